//! The audit log's SQL: batches of events as a few fixed shapes of multi-row INSERT, bound in
//! column order, and events read back from rows.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::{AuditEvent, StoreError, sql};

/// Audit events per INSERT statement at most: 9 bound values each, well under SQLite's and
/// PostgreSQL's limits on bound parameters. A power of two (see [`audit_chunks`]).
pub(super) const AUDIT_ROWS_PER_INSERT: usize = 64;

/// A batch of audit events as multi-row INSERTs of [`AUDIT_ROWS_PER_INSERT`] rows, then the
/// rest in falling powers of two (32, 16, …, 1). So there are seven statement shapes, each
/// prepared once per connection and then taken from its statement cache, rather than a new
/// statement parsed for nearly every flush.
pub(super) fn audit_chunks(events: &[AuditEvent]) -> impl Iterator<Item = &[AuditEvent]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = AUDIT_ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// How a database spells bound parameters. sqlx's SQLite driver also takes PostgreSQL's
/// `$1, $2, …`, but binds them by name, which is slower; so statements are written with `?`
/// and numbered for PostgreSQL (see [`sql`]).
#[derive(Clone, Copy)]
pub(super) enum Placeholders {
    /// SQLite: `?`.
    Question,
    /// PostgreSQL: `$1`, `$2`, ….
    Numbered,
}

/// The multi-row INSERT for a chunk from [`audit_chunks`] (a power of two up to
/// [`AUDIT_ROWS_PER_INSERT`] rows), its text built once per shape and process rather than
/// for every chunk, which the audit writer's batches would pay per event.
pub(super) fn audit_insert_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static QUESTION: OnceLock<Vec<String>> = OnceLock::new();
    static NUMBERED: OnceLock<Vec<String>> = OnceLock::new();
    debug_assert!(rows.is_power_of_two() && rows <= AUDIT_ROWS_PER_INSERT);
    let shapes = match placeholders {
        Placeholders::Question => &QUESTION,
        Placeholders::Numbered => &NUMBERED,
    };
    let shapes = shapes.get_or_init(|| {
        (0..=AUDIT_ROWS_PER_INSERT.ilog2())
            .map(|power| build_audit_insert(1 << power, placeholders))
            .collect()
    });
    &shapes[rows.ilog2() as usize]
}

/// Values bound per audit event, in the column order of [`build_audit_insert`].
const AUDIT_VALUES_PER_EVENT: usize = 9;

/// The events of a chunk bound to its INSERT (from [`audit_insert_sql`]), in column order.
pub(super) fn bind_audit_events<'q, DB: sqlx::Database>(
    mut insert: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    events: &'q [AuditEvent],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for e in events {
        insert = insert
            .bind(e.at_ms)
            .bind(e.request_id.as_deref())
            .bind(e.caller.as_deref())
            .bind(e.route.as_str())
            .bind(e.account.as_deref())
            .bind(e.target_user.as_deref())
            .bind(e.target.as_deref())
            .bind(&*e.outcome)
            .bind(i32::from(e.status));
    }
    insert
}

/// An audit event read back by `list_audit`, from a row of its SELECT.
pub(super) fn audit_event_from_row<R: sqlx::Row>(row: &R) -> Result<AuditEvent, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |column: &str| row.try_get::<Option<String>, _>(column);
    Ok(AuditEvent {
        at_ms: row.try_get("at_ms")?,
        request_id: text("request_id")?.map(Arc::from),
        caller: text("caller")?.map(Arc::from),
        route: row.try_get("route")?,
        account: text("account")?,
        target_user: text("target_user")?,
        target: text("target")?,
        outcome: Cow::Owned(row.try_get("outcome")?),
        status: u16::try_from(row.try_get::<i32, _>("status")?)
            .map_err(|_| StoreError::Corrupt("audit status".into()))?,
    })
}

fn build_audit_insert(rows: usize, placeholders: Placeholders) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events \
         (at_ms, request_id, caller, route, account, target_user, target, outcome, status) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for value in 0..AUDIT_VALUES_PER_EVENT {
            if value > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
        }
        sql.push(')');
    }
    match placeholders {
        Placeholders::Question => sql,
        Placeholders::Numbered => sql::numbered(&sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(count: usize) -> Vec<AuditEvent> {
        (0..count)
            .map(|i| AuditEvent {
                at_ms: i as i64,
                request_id: None,
                caller: None,
                route: "GET /v1/x".into(),
                account: None,
                target_user: None,
                target: None,
                outcome: "issued".into(),
                status: 200,
            })
            .collect()
    }

    #[test]
    fn audit_batches_split_into_a_few_fixed_statement_sizes_in_order() {
        for (count, sizes) in [
            (0, vec![]),
            (1, vec![1]),
            (7, vec![4, 2, 1]),
            (64, vec![64]),
            (65, vec![64, 1]),
            (500, vec![64, 64, 64, 64, 64, 64, 64, 32, 16, 4]),
        ] {
            let batch = events(count);
            let chunks: Vec<&[AuditEvent]> = audit_chunks(&batch).collect();
            let got: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert_eq!(got, sizes, "{count} events");
            let order: Vec<i64> = chunks
                .iter()
                .flat_map(|c| c.iter().map(|e| e.at_ms))
                .collect();
            assert_eq!(order, (0..count as i64).collect::<Vec<_>>());
        }
        // Whatever the batch, only seven shapes.
        let shapes: std::collections::BTreeSet<usize> = (0..=1000)
            .flat_map(|n| {
                audit_chunks(&events(n))
                    .map(<[AuditEvent]>::len)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }

    #[test]
    fn audit_inserts_bind_nine_values_per_event_in_each_databases_spelling() {
        assert_eq!(
            audit_insert_sql(2, Placeholders::Question),
            "INSERT INTO audit_events (at_ms, request_id, caller, route, account, target_user, \
             target, outcome, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let numbered = audit_insert_sql(2, Placeholders::Numbered);
        assert!(numbered.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
        for rows in [1, 2, 4, 8, 16, 32, 64] {
            for placeholders in [Placeholders::Question, Placeholders::Numbered] {
                let sql = audit_insert_sql(rows, placeholders);
                assert_eq!(sql.matches('(').count(), rows + 1);
                let bound = match placeholders {
                    Placeholders::Question => sql.matches('?').count(),
                    Placeholders::Numbered => sql.matches('$').count(),
                };
                assert_eq!(bound, rows * AUDIT_VALUES_PER_EVENT);
            }
            // Built once: the same text every time.
            assert!(std::ptr::eq(
                audit_insert_sql(rows, Placeholders::Question),
                audit_insert_sql(rows, Placeholders::Question)
            ));
        }
        assert!(audit_insert_sql(64, Placeholders::Numbered).ends_with("$576)"));
    }
}
