//! Starting workers, the embedded Python worker code, and the transport to them.
