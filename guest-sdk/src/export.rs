//! The component's `run` export.

use crate::decode::parse_input;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;

/// What [`flow!`](crate::flow) exports: parses the input JSON into `I` (blank input means
/// `{}`; a type error names the field), calls the flow, and serialises its output. An `Err`
/// from the flow becomes its `Display` text.
///
/// It is public so a flow's tests can drive the input and output handling natively, with a
/// function that does not touch a database.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Input { name: String }
/// fn greet(input: Input) -> Result<String, String> {
///     Ok(format!("hello {}", input.name))
/// }
/// let out = flowhost_sdk::run_json(r#"{"name": "ada"}"#, greet);
/// assert_eq!(out, Ok("\"hello ada\"".to_owned()));
/// let err = flowhost_sdk::run_json(r#"{"name": 5}"#, greet).unwrap_err();
/// assert_eq!(err, "invalid input: field `name`: invalid type: integer `5`, expected a string");
/// ```
pub fn run_json<I, O, E>(
    input: &str,
    flow: impl FnOnce(I) -> Result<O, E>,
) -> Result<String, String>
where
    I: DeserializeOwned,
    O: Serialize,
    E: Display,
{
    let input = parse_input(input)?;
    let output = flow(input).map_err(|e| e.to_string())?;
    serde_json::to_string(&output).map_err(|e| format!("cannot serialise the flow's output: {e}"))
}

/// Exports a function as the component's `run`: `flowhost_sdk::flow!(run);` where
/// `fn run(input: I) -> Result<O, E>` takes any `I: DeserializeOwned`, returns any
/// `O: Serialize`, and fails with any `E: Display` (such as [`Error`](crate::Error)).
/// Use it once per flow crate. See [`run_json`] for how input and output are handled.
///
/// ```
/// use flowhost_sdk::{Error, flow};
///
/// #[derive(serde::Deserialize)]
/// struct Input { #[serde(default)] limit: Option<u32> }
///
/// #[derive(serde::Serialize)]
/// struct Output { limit: u32 }
///
/// fn run(input: Input) -> Result<Output, Error> {
///     Ok(Output { limit: input.limit.unwrap_or(10) })
/// }
///
/// flow!(run);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! flow {
    ($run:path) => {
        const _: () = {
            struct FlowhostFlow;

            impl $crate::bindings::Guest for FlowhostFlow {
                fn run(
                    input: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    $crate::run_json(&input, $run)
                }
            }

            // Only the component gets the export: native test binaries of several flows must
            // not clash on the `run` symbol.
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::export!(FlowhostFlow with_types_in $crate::bindings);
            // Natively, this reference keeps the flow's code from counting as dead.
            #[cfg(not(target_arch = "wasm32"))]
            let _: fn(
                ::std::string::String,
            )
                -> ::core::result::Result<::std::string::String, ::std::string::String> =
                <FlowhostFlow as $crate::bindings::Guest>::run;
        };
    };
}
