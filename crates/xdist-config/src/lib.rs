//! What the `xdist` command resolves before a run starts, and only it needs: pytest's
//! configuration file and its values ([`ini`], with the TOML parser), the worker count for
//! `-n auto`/`logical` ([`cpus`]) and the Python interpreter to run ([`python`]). Kept out of
//! `xdist-core` so the worker side (`xdist-worker`, the synthetic bench worker), which needs
//! only the protocol, frames, specs, env names and exit codes, does not compile any of it.

pub mod cpus;
pub mod ini;
pub mod python;
