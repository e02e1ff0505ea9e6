//! The stable plugin ABI of xdist and its loader.
