//! A materialised query result.

use crate::bindings::flowhost::flow::types::{Column, Value};
use crate::decode::decode_row;
use crate::error::Error;
use serde::de::DeserializeOwned;

/// All rows of a query: its columns, and one `Vec<Value>` per row in column order.
///
/// ```
/// use flowhost_sdk::{Column, Rows, Value};
/// let rows = Rows::new(
///     vec![Column { name: "id".into(), type_name: "int8".into() }],
///     vec![vec![Value::Int(1)], vec![Value::Int(2)]],
/// );
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.get(1, "id").and_then(|v| v.as_i64()), Some(2));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Rows from parts (handy in tests of a flow's logic).
    ///
    /// ```
    /// let empty = flowhost_sdk::Rows::new(vec![], vec![]);
    /// assert!(empty.is_empty());
    /// ```
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Value>>) -> Self {
        Rows { columns, rows }
    }

    /// The result's columns.
    ///
    /// ```
    /// # use flowhost_sdk::{Column, Rows};
    /// let rows = Rows::new(vec![Column { name: "id".into(), type_name: "INTEGER".into() }], vec![]);
    /// assert_eq!(rows.columns()[0].type_name, "INTEGER");
    /// ```
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The position of a column: an exact match, else the first that matches ignoring ASCII
    /// case (PostgreSQL folds unquoted names to lower case, SQL Server keeps them as written).
    ///
    /// ```
    /// # use flowhost_sdk::{Column, Rows};
    /// let rows = Rows::new(vec![Column { name: "Total".into(), type_name: "int".into() }], vec![]);
    /// assert_eq!(rows.column_index("total"), Some(0));
    /// assert_eq!(rows.column_index("nope"), None);
    /// ```
    pub fn column_index(&self, name: &str) -> Option<usize> {
        let cols = &self.columns;
        cols.iter()
            .position(|c| c.name == name)
            .or_else(|| cols.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// How many rows there are.
    ///
    /// ```
    /// assert_eq!(flowhost_sdk::Rows::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    ///
    /// ```
    /// assert!(flowhost_sdk::Rows::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value in row `row` (from 0) and column `column` (see [`column_index`](Rows::column_index)).
    ///
    /// ```
    /// # use flowhost_sdk::{Column, Rows, Value};
    /// let rows = Rows::new(
    ///     vec![Column { name: "email".into(), type_name: "TEXT".into() }],
    ///     vec![vec![Value::Null]],
    /// );
    /// assert!(rows.get(0, "email").unwrap().is_null());
    /// assert!(rows.get(1, "email").is_none());
    /// ```
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let index = self.column_index(column)?;
        self.rows.get(row)?.get(index)
    }

    /// One row's values, in column order.
    ///
    /// ```
    /// # use flowhost_sdk::{Rows, Value};
    /// let rows = Rows::new(vec![], vec![vec![Value::Int(1)]]);
    /// assert_eq!(rows.row(0), Some(&[Value::Int(1)][..]));
    /// ```
    pub fn row(&self, row: usize) -> Option<&[Value]> {
        self.rows.get(row).map(Vec::as_slice)
    }

    /// Iterates over the rows' values.
    ///
    /// ```
    /// # use flowhost_sdk::{Rows, Value};
    /// let rows = Rows::new(vec![], vec![vec![Value::Int(1)], vec![Value::Int(2)]]);
    /// let ids: Vec<i64> = rows.iter().filter_map(|r| r[0].as_i64()).collect();
    /// assert_eq!(ids, [1, 2]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &[Value]> {
        self.rows.iter().map(Vec::as_slice)
    }

    /// Takes the rows' values out.
    ///
    /// ```
    /// # use flowhost_sdk::{Rows, Value};
    /// let rows = Rows::new(vec![], vec![vec![Value::Null]]);
    /// assert_eq!(rows.into_rows(), vec![vec![Value::Null]]);
    /// ```
    pub fn into_rows(self) -> Vec<Vec<Value>> {
        self.rows
    }

    /// Decodes every row into `T` (by column name for structs and maps, by position for tuples,
    /// as the value itself for one-column rows). See [`Db::query_as`](crate::Db::query_as) for
    /// how values map.
    ///
    /// ```
    /// # use flowhost_sdk::{Column, Rows, Value};
    /// #[derive(serde::Deserialize)]
    /// struct Row { id: i64, email: Option<String> }
    /// let rows = Rows::new(
    ///     vec![
    ///         Column { name: "id".into(), type_name: "int8".into() },
    ///         Column { name: "email".into(), type_name: "text".into() },
    ///     ],
    ///     vec![vec![Value::Int(1), Value::Null]],
    /// );
    /// let decoded: Vec<Row> = rows.deserialize().unwrap();
    /// assert_eq!(decoded[0].id, 1);
    /// assert!(decoded[0].email.is_none());
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.rows
            .iter()
            .map(|r| decode_row(&self.columns, r))
            .collect()
    }
}

impl IntoIterator for Rows {
    type Item = Vec<Value>;
    type IntoIter = std::vec::IntoIter<Vec<Value>>;

    /// Consumes the result row by row.
    ///
    /// ```
    /// # use flowhost_sdk::{Rows, Value};
    /// let rows = Rows::new(vec![], vec![vec![Value::Int(1)]]);
    /// for row in rows {
    ///     assert_eq!(row, vec![Value::Int(1)]);
    /// }
    /// ```
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}
