//! Every size limit of the event contract, named, with its reason. Each has a boundary test.

/// Largest encoded body (without its lines). Bodies are headers: ids, dates, a root. 64 KiB leaves
/// room for long reasons and parameter tables while keeping a flood of junk cheap to refuse.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest encoded batch line. A line is a worker id, scheme and three amounts (< 200 bytes).
pub const MAX_LINE_BYTES: usize = 1024;
/// Most lines in one batch event: a large employer's monthly payroll in one signature, while
/// a whole event (≈100 bytes a line) stays under [`MAX_ENVELOPE_BYTES`].
pub const MAX_BATCH_LINES: usize = 100_000;
/// Most signatures on one event (employer and worker on a contract need two).
pub const MAX_SIGNATURES: usize = 8;
/// Largest envelope (body, lines and signatures) accepted from the network.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;
/// Most periods in one foreign_periods_reported, and branches in one certificate.
pub const MAX_LIST_ITEMS: usize = 1024;
/// Most parameters in one parameters_published.
pub const MAX_PARAMETERS: usize = 256;
/// How far ahead of the ledger clock a body's signed_at may be (docs/events.md: 5 minutes).
pub const MAX_SIGNED_AHEAD_SECONDS: i64 = 5 * 60;
/// Earliest contribution month (docs/events.md).
pub const FIRST_CONTRIBUTION_MONTH: (i32, u32) = (1951, 1);
