//! Statement parameters: positional (`$1`, `$2`, ...) or named (`:name`).

use crate::bindings::flowhost::flow::types::{NamedValue, Params as RawParams, Value};
use crate::error::Error;
use crate::ser;
use serde::Serialize;

/// Anything that can be a statement's parameters.
///
/// Implemented for `()` (no parameters), [`Params`], `&[Value]`, `Vec<Value>` and `[Value; N]`
/// (positional), tuples of up to eight `Into<Value>` items (positional), and [`Named`] (a
/// struct's or map's fields as named parameters).
///
/// ```
/// use flowhost_sdk::{IntoParams, Value, named, params};
/// # fn main() -> Result<(), flowhost_sdk::Error> {
/// let none = ().into_params()?;
/// let positional = (42, "completed").into_params()?;
/// let from_vec = vec![Value::from(1), Value::Null].into_params()?;
/// let ad_hoc = params! { "survey_id" => 7, "status" => "completed" }.into_params()?;
/// #[derive(serde::Serialize)]
/// struct Filter { survey_id: i64 }
/// let from_struct = named(&Filter { survey_id: 7 }).into_params()?;
/// # Ok(()) }
/// ```
pub trait IntoParams {
    /// Converts into the parameter list sent to the host. Fails only when a serialised value
    /// cannot be expressed (a map with non-string keys, a struct that is not a struct).
    fn into_params(self) -> Result<Params, Error>;
}

/// A parameter list: empty, positional, or named. Build one by hand, with [`params!`](crate::params!), or by
/// serialising a struct with [`named`].
///
/// A list becomes positional with its first [`push`](Params::push) and named with its first
/// [`bind`](Params::bind); the contract cannot mix the two in one statement.
///
/// ```
/// use flowhost_sdk::{Date, Params};
/// let by_name = Params::new().bind("survey_id", 7).bind("since", Date("2024-01-01".into()));
/// let by_position = Params::new().push(7).push("completed");
/// assert_eq!(by_name.len(), 2);
/// assert_eq!(by_position.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    kind: Kind,
}

#[derive(Clone, Debug, Default, PartialEq)]
enum Kind {
    #[default]
    Empty,
    Positional(Vec<Value>),
    Named(Vec<NamedValue>),
}

impl Params {
    /// An empty list.
    ///
    /// ```
    /// assert!(flowhost_sdk::Params::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Params::default()
    }

    /// Adds the next positional parameter (`$1`, then `$2`, ...).
    ///
    /// # Panics
    /// If the list already has named parameters.
    ///
    /// ```
    /// let p = flowhost_sdk::Params::new().push(1).push(None::<i64>);
    /// assert_eq!(p.len(), 2);
    /// ```
    pub fn push(mut self, value: impl Into<Value>) -> Self {
        self.add(value);
        self
    }

    /// Adds the next positional parameter in place. See [`push`](Params::push).
    ///
    /// # Panics
    /// If the list already has named parameters.
    ///
    /// ```
    /// let mut p = flowhost_sdk::Params::new();
    /// for id in [1, 2, 3] {
    ///     p.add(id);
    /// }
    /// assert_eq!(p.len(), 3);
    /// ```
    pub fn add(&mut self, value: impl Into<Value>) {
        match &mut self.kind {
            Kind::Empty => self.kind = Kind::Positional(vec![value.into()]),
            Kind::Positional(v) => v.push(value.into()),
            Kind::Named(_) => panic!("cannot add a positional parameter to named parameters"),
        }
    }

    /// Binds `:name` to a value, replacing an earlier value of that name.
    ///
    /// # Panics
    /// If the list already has positional parameters.
    ///
    /// ```
    /// let p = flowhost_sdk::Params::new().bind("id", 1).bind("id", 2);
    /// assert_eq!(p.len(), 1);
    /// ```
    pub fn bind(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Binds `:name` in place. See [`bind`](Params::bind).
    ///
    /// # Panics
    /// If the list already has positional parameters.
    ///
    /// ```
    /// let mut p = flowhost_sdk::Params::new();
    /// p.set("status", "completed");
    /// assert_eq!(p.len(), 1);
    /// ```
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let (name, value) = (name.into(), value.into());
        match &mut self.kind {
            Kind::Empty => self.kind = Kind::Named(vec![NamedValue { name, value }]),
            Kind::Named(v) => match v.iter_mut().find(|n| n.name == name) {
                Some(existing) => existing.value = value,
                None => v.push(NamedValue { name, value }),
            },
            Kind::Positional(_) => panic!("cannot bind `:{name}` in positional parameters"),
        }
    }

    /// How many parameters the list holds.
    ///
    /// ```
    /// assert_eq!(flowhost_sdk::Params::new().push(1).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Empty => 0,
            Kind::Positional(v) => v.len(),
            Kind::Named(v) => v.len(),
        }
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// assert!(!flowhost_sdk::Params::new().bind("a", 1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn into_raw(self) -> RawParams {
        match self.kind {
            Kind::Empty => RawParams::Positional(Vec::new()),
            Kind::Positional(v) => RawParams::Positional(v),
            Kind::Named(v) => RawParams::Named(v),
        }
    }
}

/// Builds named [`Params`] in place: `params! { "name" => value, ... }`. Each value is anything
/// `Into<Value>`.
///
/// ```
/// use flowhost_sdk::{Params, params};
/// let p = params! { "survey_id" => 7, "status" => "completed" };
/// assert_eq!(p, Params::new().bind("survey_id", 7).bind("status", "completed"));
/// assert!(params! {}.is_empty());
/// ```
#[macro_export]
macro_rules! params {
    ($($name:expr => $value:expr),* $(,)?) => {
        $crate::Params::new() $(.bind($name, $value))*
    };
}

/// Serialises a struct or a map into named parameters, one per field. Build it with [`named`].
///
/// Field values map as JSON would suggest: integers → `int` (`float` beyond `i64`), floats →
/// `float`, strings → `text`, bools → `boolean`, `None`/unit → `null`, unit enum variants →
/// `text` (their serde name), sequences, maps and nested structs → `json`. The typed wrappers
/// ([`Decimal`](crate::Decimal), [`Date`](crate::Date), ...) keep their exact case.
///
/// ```
/// use flowhost_sdk::{IntoParams, Named, Params, Value};
/// #[derive(serde::Serialize)]
/// struct Row { id: i64, note: Option<String>, tags: Vec<String> }
/// let row = Row { id: 1, note: None, tags: vec!["a".into()] };
/// let p = Named(&row).into_params().unwrap();
/// let expected = Params::new()
///     .bind("id", 1)
///     .bind("note", Value::Null)
///     .bind("tags", Value::Json(r#"["a"]"#.into()));
/// assert_eq!(p, expected);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Named<'a, T: ?Sized>(pub &'a T);

/// Named parameters from a struct's or map's fields. See [`Named`] for how values map.
///
/// ```
/// use std::collections::BTreeMap;
/// use flowhost_sdk::{IntoParams, Params, named};
/// let mut filter = BTreeMap::new();
/// filter.insert("survey_id", 7);
/// assert_eq!(named(&filter).into_params().unwrap(), Params::new().bind("survey_id", 7));
/// ```
pub fn named<T: Serialize + ?Sized>(value: &T) -> Named<'_, T> {
    Named(value)
}

/// Converts one serialisable value into a [`Value`] the way [`Named`] converts a field.
///
/// ```
/// use flowhost_sdk::{Decimal, Value, to_value};
/// assert_eq!(to_value(&3u64).unwrap(), Value::Int(3));
/// assert_eq!(to_value(&u64::MAX).unwrap(), Value::Float(u64::MAX as f64));
/// assert_eq!(to_value(&Decimal("1.50".into())).unwrap(), Value::Decimal("1.50".into()));
/// assert_eq!(to_value(&vec![1, 2]).unwrap(), Value::Json("[1,2]".into()));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, Error> {
    ser::to_value(value)
}

impl IntoParams for Params {
    fn into_params(self) -> Result<Params, Error> {
        Ok(self)
    }
}

impl IntoParams for () {
    fn into_params(self) -> Result<Params, Error> {
        Ok(Params::new())
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Result<Params, Error> {
        Ok(Params {
            kind: Kind::Positional(self),
        })
    }
}

impl IntoParams for &[Value] {
    fn into_params(self) -> Result<Params, Error> {
        self.to_vec().into_params()
    }
}

impl<const N: usize> IntoParams for [Value; N] {
    fn into_params(self) -> Result<Params, Error> {
        Vec::from(self).into_params()
    }
}

macro_rules! tuple_params {
    ($(($($t:ident),+))+) => {$(
        impl<$($t: Into<Value>),+> IntoParams for ($($t,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Result<Params, Error> {
                let ($($t,)+) = self;
                vec![$($t.into()),+].into_params()
            }
        }
    )+};
}
tuple_params! {
    (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F) (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
}

impl<T: Serialize + ?Sized> IntoParams for Named<'_, T> {
    fn into_params(self) -> Result<Params, Error> {
        let mut out = Params::new();
        ser::named_fields(self.0, &mut out)?;
        // An empty struct still means "named": keep it so, not positional.
        if out.kind == Kind::Empty {
            out.kind = Kind::Named(Vec::new());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
