//! (voicemail: being written)
