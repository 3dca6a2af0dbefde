//! The requests discovery builds: a read of one key, and the guarded writes of its transactions
//! (put or delete one key if its modification revision, or its lease, is what was expected).

use super::pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// A read of `key` alone.
pub(crate) fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        ..RangeRequest::default()
    }
}

/// Put `value` at `key` under `lease`.
pub(crate) fn put(key: &str, value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })),
    }
}

/// Delete `key` alone.
pub(crate) fn delete(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// `key`'s modification revision is `rev` (0: the key does not exist).
pub(crate) fn mod_revision_is(key: &str, rev: i64) -> Compare {
    equal(key, CompareTarget::Mod, TargetUnion::ModRevision(rev))
}

/// `key` is under `lease` (which also means it exists).
pub(crate) fn lease_is(key: &str, lease: i64) -> Compare {
    equal(key, CompareTarget::Lease, TargetUnion::Lease(lease))
}

/// If `when` holds, `then`; otherwise nothing.
pub(crate) fn txn(when: Compare, then: RequestOp) -> TxnRequest {
    TxnRequest {
        compare: vec![when],
        success: vec![then],
        failure: Vec::new(),
    }
}

/// `then`, unconditionally: a plain write in the same shape as the guarded ones.
pub(crate) fn always(then: RequestOp) -> TxnRequest {
    TxnRequest {
        compare: Vec::new(),
        success: vec![then],
        failure: Vec::new(),
    }
}

fn equal(key: &str, target: CompareTarget, value: TargetUnion) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(value),
        range_end: Vec::new(),
    }
}
