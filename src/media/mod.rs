//! Media proxy (reserved): authenticated byte-range streaming to allowlisted origins
//! with an SSRF guard and HLS/DASH manifest rewriting.
