//! Between schema versions: where a column's value sits in a row written at some version.
//!
//! A row (hot or flushed) stores the values of the columns alive at the schema version it was
//! written under, in the order of [`TableDef::columns_at`]; ALTER TABLE never rewrites rows.
//! Readers map a row's values to the columns they want with these functions, never by hand.

use crate::catalog::TableDef;
use crate::types::Value;

/// For each wanted column id (None: a column no row stores, such as the row id), the position
/// of its value in a row written at `version`; None where that version has no such column.
pub fn positions(
    def: &TableDef,
    version: u32,
    wanted: impl IntoIterator<Item = Option<u32>>,
) -> Vec<Option<usize>> {
    let stored = def.layout_at(version);
    wanted
        .into_iter()
        .map(|id| id.and_then(|id| stored.iter().position(|x| *x == id)))
        .collect()
}

/// A row's values written at `from_version`, re-arranged into the columns `target` (ids):
/// columns the row predates read as their `value_for_older_rows` (else NULL).
pub fn convert(
    def: &TableDef,
    from_version: u32,
    target: &[u32],
    values: Vec<Value>,
) -> Vec<Value> {
    let from = def.layout_at(from_version);
    if from == target {
        return values;
    }
    let out: Vec<Value> = target
        .iter()
        .map(|id| match from.iter().position(|x| x == id) {
            Some(i) => values.get(i).cloned().unwrap_or(Value::Null),
            None => def
                .columns
                .iter()
                .find(|c| c.id == *id)
                .and_then(|c| c.value_for_older_rows.clone())
                .unwrap_or(Value::Null),
        })
        .collect();
    debug_assert_eq!(out.len(), target.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, TableKind, TableOptions};
    use crate::types::DataType;
    use proptest::prelude::*;

    /// A table whose columns were added and dropped over `history` (true: add, false: drop the
    /// oldest live column), one schema version per step.
    fn table(history: &[bool]) -> TableDef {
        let mut columns: Vec<ColumnDef> = Vec::new();
        for (step, add) in history.iter().enumerate() {
            let version = step as u32 + 1;
            if *add || columns.iter().all(|c| c.dropped_in.is_some()) {
                let id = columns.len() as u32 + 1;
                columns.push(ColumnDef {
                    id,
                    name: format!("c{id}"),
                    data_type: DataType::BigInt,
                    nullable: true,
                    default: None,
                    value_for_older_rows: (id % 2 == 0).then_some(Value::BigInt(-(id as i64))),
                    added_in: version,
                    dropped_in: None,
                });
            } else if let Some(c) = columns.iter_mut().find(|c| c.dropped_in.is_none()) {
                c.dropped_in = Some(version);
            }
        }
        TableDef {
            id: 1,
            namespace: "n".into(),
            name: "t".into(),
            kind: TableKind::Shared,
            columns,
            primary_key: None,
            options: TableOptions::default(),
            schema_version: history.len() as u32,
            created_at_ms: 0,
        }
    }

    proptest! {
        #[test]
        fn a_row_keeps_its_values_in_every_later_layout(
            history in proptest::collection::vec(any::<bool>(), 1..12),
            from in 1u32..12, to in 1u32..12,
        ) {
            let def = table(&history);
            let (from, to) = (from.min(def.schema_version), to.min(def.schema_version));
            // A row written at `from`: the value of column id k is k.
            let ids = def.layout_at(from);
            let row: Vec<Value> = ids.iter().map(|id| Value::BigInt(*id as i64)).collect();
            let target = def.layout_at(to);
            let out = convert(&def, from, &target, row.clone());
            let at = positions(&def, from, target.iter().map(|id| Some(*id)));
            for (i, id) in target.iter().enumerate() {
                let col = def.columns.iter().find(|c| c.id == *id).unwrap();
                let expected = if ids.contains(id) {
                    Value::BigInt(*id as i64)
                } else {
                    col.value_for_older_rows.clone().unwrap_or(Value::Null)
                };
                prop_assert_eq!(&out[i], &expected);
                prop_assert_eq!(at[i].map(|p| row[p].clone()), ids.contains(id).then(|| expected.clone()));
            }
            prop_assert_eq!(positions(&def, from, [None]), vec![None]);
        }
    }
}
