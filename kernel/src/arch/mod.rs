//! Hardware glue. Only x86_64 exists; everything policy-free lives in
//! `exo-core`, so this module stays thin.
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
#[cfg(not(target_arch = "x86_64"))]
compile_error!("exo only runs on x86_64");
