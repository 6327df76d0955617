//! Why a file is not a usable flow component, in words that say what to do about it.
//!
//! The engine's own messages (`section range out of bounds`, `component imports instance ...,
//! but a matching implementation was not found in the linker`) are accurate but name its
//! internals; these checks name the file's problem and the fix.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract this host implements (`wit/`); a flow built against another one cannot link.
pub const CONTRACT: &str = "flowhost:flow@0.1.0";

const BUILD: &str = "`cargo build --release --target wasm32-wasip2 -p <flow crate>`";

/// Interfaces the linker provides: the contract, logging, and the WASI 0.2 set (of which the
/// sandbox grants nothing beyond clocks, random and captured stdio).
const PROVIDED: &[&str] = &[
    "flowhost:flow/",
    "wasi:logging/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Checks what can be told from the bytes alone: a component, and a whole one.
pub(super) fn check_binary(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\0asm") {
        return Err(format!(
            "it is not a WebAssembly file (no \\0asm header); build the flow with {BUILD}"
        ));
    }
    if bytes.len() >= 8 && bytes[4..8] == [1, 0, 0, 0] {
        return Err(format!(
            "it is a core WebAssembly module, not a component; build the flow with {BUILD} \
             (the wasm32-wasip2 target makes a component)"
        ));
    }
    if !sections_fit(bytes) {
        return Err(format!(
            "it is not a complete component: the file ends in the middle of its contents \
             ({} bytes; an interrupted build or copy?); rebuild it with {BUILD} and copy the \
             whole file",
            bytes.len()
        ));
    }
    Ok(())
}

/// Whether every top-level section's declared size fits in the file. A file cut short always
/// cuts its last section, so this finds truncation wherever the cut falls (except exactly on a
/// section boundary, which the linking checks then report as a missing import or export).
fn sections_fit(bytes: &[u8]) -> bool {
    let Some(mut rest) = bytes.get(8..) else {
        return false;
    };
    while let Some((_id, after_id)) = rest.split_first() {
        let Some((size, width)) = leb128_u32(after_id) else {
            return false;
        };
        let body = &after_id[width..];
        let Some(next) = body.get(size as usize..) else {
            return false;
        };
        rest = next;
    }
    true
}

fn leb128_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Why linking failed: which import, and what to do.
pub(super) fn explain_imports(
    engine: &Engine,
    component: &Component,
    error: &wasmtime::Error,
) -> String {
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let (ours, version) = CONTRACT.split_once('@').expect("CONTRACT has a version");
    for name in &imports {
        let Some(interface) = name.strip_prefix(ours).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let theirs = interface.split_once('@').map_or("(no version)", |(_, v)| v);
        if theirs != version {
            return format!(
                "it was built against {ours}@{theirs} (it imports `{name}`), but this flowhost \
                 provides {CONTRACT}; rebuild the flow against the flowhost-sdk that comes \
                 with this flowhost"
            );
        }
    }
    if let Some(name) = imports
        .iter()
        .find(|name| !PROVIDED.iter().any(|p| name.starts_with(p)))
    {
        return format!(
            "it imports `{name}`, which flowhost does not provide: a flow may import only \
             flowhost:flow/database, wasi:logging/logging and the WASI 0.2 command-line basics \
             (no HTTP, no sockets, no files); remove what brings `{name}` in and rebuild"
        );
    }
    let detail = super::trap::one_line(&format!("{error:#}"));
    match imports.iter().find(|name| detail.contains(name.as_str())) {
        Some(name) => format!(
            "its import `{name}` does not match what this flowhost provides ({detail}); it was \
             built against another version of that interface: rebuild it against the \
             flowhost-sdk that comes with this flowhost"
        ),
        None => format!(
            "its imports do not match what this flowhost provides ({detail}); rebuild it \
             against the flowhost-sdk that comes with this flowhost"
        ),
    }
}

/// Why the `run` export could not be found or typed.
pub(super) fn explain_export(
    engine: &Engine,
    component: &Component,
    error: &wasmtime::Error,
) -> String {
    let has_run = component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name == "run");
    if !has_run {
        return "it does not export the flow world's `run` function; export it with \
                flowhost_sdk::flow!(your_run_function) and rebuild"
            .to_owned();
    }
    let detail = super::trap::one_line(&format!("{error:#}"));
    format!(
        "its `run` export has the wrong type ({detail}); this flowhost calls \
         `run: func(input: string) -> result<string, string>` ({CONTRACT}): export it with \
         flowhost_sdk::flow! and rebuild"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    fn component(sections: &[(u8, &[u8])]) -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        for (id, body) in sections {
            bytes.push(*id);
            assert!(body.len() < 128, "one-byte sizes only");
            bytes.push(body.len() as u8);
            bytes.extend_from_slice(body);
        }
        bytes
    }

    #[test]
    fn whole_files_pass_and_cut_ones_do_not() {
        let whole = component(&[(1, b"abc"), (0, b"\x04name"), (7, &[0; 100])]);
        assert_eq!(check_binary(&whole), Ok(()));
        for cut in 0..whole.len() {
            let result = check_binary(&whole[..cut]);
            // A cut on a section boundary leaves a file whose sections all fit.
            let boundary = [8, 13, 20].contains(&cut);
            assert_eq!(result.is_ok(), boundary, "cut at {cut}: {result:?}");
        }
    }

    #[test]
    fn core_modules_and_other_files_are_named() {
        let core = check_binary(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(core.contains("core WebAssembly module"), "{core}");
        let text = check_binary(b"fn main() {}").unwrap_err();
        assert!(text.contains("not a WebAssembly file"), "{text}");
    }

    #[test]
    fn multi_byte_section_sizes_are_read() {
        assert_eq!(leb128_u32(&[0xe5, 0x8e, 0x26]), Some((624_485, 3)));
        assert_eq!(leb128_u32(&[0x80, 0x80]), None);
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&[1, 0x80, 0x01]);
        bytes.extend_from_slice(&[0; 128]);
        assert_eq!(check_binary(&bytes), Ok(()));
        assert!(check_binary(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_contract_matches_the_wit() {
        let wit = include_str!("../../../wit/database.wit");
        assert!(
            wit.starts_with(&format!("package {CONTRACT};")),
            "wit/database.wit: {}",
            wit.lines().next().unwrap_or("")
        );
    }
}
