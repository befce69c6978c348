//! Notifications end to end (written next).
