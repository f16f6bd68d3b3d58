//! The gate's bits: which parser a line can be for. A leaf of its own, so that a log family
//! can name a bit without depending on the gate, which depends on the families' literals (the
//! two used to import each other).

/// A literal that may start a second line glued to this one (see `may_glue`; the NCCL header
/// literal is tested apart, since every NCCL line holds it once).
pub const GLUE: u16 = 1;
/// A failure signature or a traceback start.
pub const FAIL: u16 = 1 << 1;
/// An NCCL error code or text, or PyTorch's watchdog report.
pub const NCCL_ERR: u16 = 1 << 2;
/// Something an NCCL INFO message is read for.
pub const NCCL_INFO: u16 = 1 << 3;
/// nccl-tests lines that are neither comments nor table rows.
pub const NCCL_TESTS: u16 = 1 << 4;
pub const DEEPSPEED: u16 = 1 << 5;
pub const MEGATRON: u16 = 1 << 6;
pub const PAYLOAD: u16 = 1 << 7;
/// Which of an INFO message's literals (each also sets `NCCL_INFO`): `Parser::info_message`
/// then tests only for those.
pub const INFO_VIA: u16 = 1 << 8;
pub const INFO_VERSION: u16 = 1 << 9;
pub const INFO_INIT: u16 = 1 << 10;
pub const INFO_NRANKS: u16 = 1 << 11;
pub const INFO_ALL: u16 = INFO_VIA | INFO_VERSION | INFO_INIT | INFO_NRANKS;
