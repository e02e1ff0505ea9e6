//! Python steps the controller runs around a run, in the user's interpreter: the
//! controller session for controller-side plugins, pytest-cov's combine and report, the
//! plugins' `pytest_terminal_summary`, pytest-randomly's shared seed. They are not
//! reporters: each starts or talks to a Python process. May use `report::termwriter` to
//! print, never the run loop's state.

pub mod controller_session;
pub mod cov;
pub mod randomly;
pub mod session_scheduler;
mod step;
pub mod summary;
