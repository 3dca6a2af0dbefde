//! Pages of a long list, for the status page: `?limit=N&offset=M` on `GET /v1/sessions` and
//! `GET /v1/services/{name}/downstreams`.
//!
//! The list is ordered youngest first (smallest `age_ms`, then by id), so that a page and the
//! whole list agree on the order. Without either parameter the answer is the contract's whole
//! array. With one, `offset` entries are skipped and at most `limit` (default and cap
//! [`MAX_LIMIT`]) are returned. Either way the header
//! `X-Total-Count` says how many there are in all, so a page can tell how many pages there are.

use std::cmp::Ordering;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::reply::{self, Refused};

/// The most entries one page holds; a larger `limit` is lowered to it.
pub const MAX_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    /// The page a query asks for: `None` for the whole list, a 400 for a value that is not a
    /// whole number. Other parameters are ignored.
    pub fn from_query(query: Option<&str>) -> Result<Option<Page>, Refused> {
        let number = |name: &str| -> Result<Option<usize>, Refused> {
            match super::query_param(query.unwrap_or(""), name) {
                None => Ok(None),
                Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
                    Refused::new(
                        StatusCode::BAD_REQUEST,
                        format!("invalid {name} \"{v}\": expected a whole number"),
                    )
                }),
            }
        };
        let (limit, offset) = (number("limit")?, number("offset")?);
        if limit.is_none() && offset.is_none() {
            return Ok(None);
        }
        Ok(Some(Page {
            limit: limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            offset: offset.unwrap_or(0),
        }))
    }
}

/// 200 with `items` (or the page of them, ordered by `youngest_first`) and `X-Total-Count`.
pub fn answer<T: Serialize>(
    mut items: Vec<T>,
    page: Option<Page>,
    youngest_first: impl Fn(&T, &T) -> Ordering,
) -> Response {
    let total = items.len();
    items.sort_by(youngest_first);
    if let Some(p) = page {
        items = items.into_iter().skip(p.offset).take(p.limit).collect();
    }
    let mut r = reply::json(StatusCode::OK, &items);
    r.headers_mut().insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(total),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let p = |q: &str| Page::from_query(Some(q)).ok().flatten();
        assert_eq!(Page::from_query(None).ok(), Some(None));
        assert_eq!(p("target=all"), None);
        assert_eq!(
            p("limit=5"),
            Some(Page {
                limit: 5,
                offset: 0
            })
        );
        assert_eq!(
            p("limit=5&offset=10"),
            Some(Page {
                limit: 5,
                offset: 10
            })
        );
        assert_eq!(
            p("offset=3"),
            Some(Page {
                limit: MAX_LIMIT,
                offset: 3
            })
        );
        assert_eq!(
            p("limit=100000"),
            Some(Page {
                limit: MAX_LIMIT,
                offset: 0
            })
        );
        for bad in ["limit=-1", "limit=", "limit=x", "offset=1.5"] {
            let r = Page::from_query(Some(bad)).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_page_is_youngest_first_and_the_total_counts_all() {
        let ages = vec![30u64, 10, 20, 40];
        let r = answer(
            ages,
            Some(Page {
                limit: 2,
                offset: 1,
            }),
            |a, b| a.cmp(b),
        );
        assert_eq!(r.headers()["x-total-count"], "4");
        assert_eq!(body(r).await, "[20,30]");
        // Without a page: all of it, in the same order as the pages.
        let r = answer(vec![3u64, 1, 2], None, |a, b| a.cmp(b));
        assert_eq!(r.headers()["x-total-count"], "3");
        assert_eq!(body(r).await, "[1,2,3]");
        let r = answer(
            vec![3u64, 1, 2],
            Some(Page {
                limit: 5,
                offset: 7,
            }),
            |a, b| a.cmp(b),
        );
        assert_eq!(body(r).await, "[]");
    }
}
