//! AEAD sealing of values under a subject's data key, bound by associated data to the region,
//! subject, field and value id it belongs to.
