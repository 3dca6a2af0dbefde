//! Why a stream was aborted: the `code` of a Reset frame.

/// Reset codes. The numbers are on the wire; [`ResetCode::as_str`] is the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ResetCode {
    /// The application gave up on the stream (client went away).
    Cancel = 0,
    /// The backend refused the connection.
    Refused = 1,
    /// Connecting to or waiting on the backend timed out.
    Timeout = 2,
    /// The receiving node serves no such service.
    UnknownService = 3,
    /// An operator or policy ended the session.
    Kicked = 4,
    /// The stream broke a protocol rule the transport could survive.
    Protocol = 5,
    /// A bug or an unexpected condition; also the code for numbers this version does not know.
    Internal = 6,
    /// The node is shutting down or draining and takes no new streams.
    Shutdown = 7,
    /// No route or no live target for the service.
    Unreachable = 8,
    /// The transport's trust level may not open this service (CONTRACT section 10): a token
    /// that does not list it, or an anonymous transport and a service that is not anonymous.
    Forbidden = 9,
    /// The session would pass a node twice, or more than [`MAX_PATH`](crate::MAX_PATH) nodes
    /// (CONTRACT section 6).
    Loop = 10,
}

impl ResetCode {
    /// Every code, in wire order.
    pub const ALL: [ResetCode; 11] = [
        ResetCode::Cancel,
        ResetCode::Refused,
        ResetCode::Timeout,
        ResetCode::UnknownService,
        ResetCode::Kicked,
        ResetCode::Protocol,
        ResetCode::Internal,
        ResetCode::Shutdown,
        ResetCode::Unreachable,
        ResetCode::Forbidden,
        ResetCode::Loop,
    ];

    /// Maps a wire number to a code. Unknown numbers (a newer peer) become `Internal` rather
    /// than an error, so adding codes later stays compatible.
    pub fn from_u32(v: u32) -> ResetCode {
        ResetCode::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(ResetCode::Internal)
    }

    /// A stable lower-case label, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetCode::Cancel => "cancel",
            ResetCode::Refused => "refused",
            ResetCode::Timeout => "timeout",
            ResetCode::UnknownService => "unknown_service",
            ResetCode::Kicked => "kicked",
            ResetCode::Protocol => "protocol",
            ResetCode::Internal => "internal",
            ResetCode::Shutdown => "shutdown",
            ResetCode::Unreachable => "unreachable",
            ResetCode::Forbidden => "forbidden",
            ResetCode::Loop => "loop",
        }
    }
}

impl std::fmt::Display for ResetCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_is_internal() {
        for code in ResetCode::ALL {
            assert_eq!(ResetCode::from_u32(code as u32), code);
        }
        assert_eq!(ResetCode::Unreachable as u32, 8);
        assert_eq!(ResetCode::Forbidden as u32, 9);
        assert_eq!(ResetCode::Loop as u32, 10);
        assert_eq!(ResetCode::from_u32(11), ResetCode::Internal);
        assert_eq!(ResetCode::from_u32(u32::MAX), ResetCode::Internal);
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = ResetCode::ALL.iter().map(|c| c.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ResetCode::ALL.len());
        assert_eq!(ResetCode::UnknownService.to_string(), "unknown_service");
    }
}
