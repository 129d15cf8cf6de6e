//! The auditor's side of a custos transparency log: fetch a region's log through a
//! [`Fetcher`], check the checkpoint signature, every tile and (optionally) every entry
//! against the signed root, and the new checkpoint's consistency with the state stored
//! by the previous run ([`verify_log`]); and check a receipt offline ([`verify_receipt`]).
//!
//! All Merkle, tile and note work is done by the `tlog` crate; this crate only decides
//! what to fetch, in which order, and names what is wrong when a check fails. Fetching is
//! abstracted so that the command-line shell can bring its own HTTP client or read a
//! mirrored directory, and tests serve logs from memory.

pub mod fetch;
pub mod receipt;
pub mod state;
pub mod verify;

pub use fetch::{DIRECTORY_FILE_BYTES_MAX, DirectoryFetcher, FetchError, Fetcher};
pub use receipt::{Receipt, ReceiptError, verify_receipt};
pub use state::{TrustedState, TrustedStateError};
pub use verify::{
    BUNDLE_BYTES_MAX, BUNDLES_IN_FLIGHT_MAX, CHECKPOINT_BYTES_MAX, ENTRY_THREADS_MAX, TREE_SIZE_MAX, VerifyError, VerifyOptions,
    VerifyReport, verify_log,
};
