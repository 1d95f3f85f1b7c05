//! What JSON a job's argument type takes, in words, for `help apply` and `bad_args` errors:
//! `string`, `[integer >= 0, integer >= 0]`, `{"path": string, "width": integer >= 0}`.
//! Traced from the type's `Deserialize` with serde-reflection, never from its Rust name.

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Format, Named, Registry, Tracer, TracerConfig, VariantFormat,
};
use std::fmt::Write as _;

/// Said of a type whose `Deserialize` cannot be traced (it takes any JSON, or validates).
pub(crate) const ANY: &str = "any JSON (see the program's documentation)";

/// How deep nested types are spelled out before `...`.
const DEPTH: usize = 4;

/// The JSON shape `A` deserializes from.
pub(crate) fn of<A: DeserializeOwned>() -> String {
    // A user's `Deserialize` runs here: a panic in it must not take the server down.
    std::panic::catch_unwind(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (format, _) = tracer.trace_simple_type::<A>().ok()?;
        let registry = tracer.registry_unchecked();
        let mut out = String::new();
        write(&mut out, &format, &registry, 0);
        Some(out)
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| ANY.to_owned())
}

fn write(out: &mut String, f: &Format, reg: &Registry, depth: usize) {
    if depth > DEPTH {
        out.push_str("...");
        return;
    }
    let d = depth + 1;
    match f {
        Format::Variable(_) => out.push_str("any JSON"),
        Format::TypeName(name) => match reg.get(name) {
            Some(c) => container(out, c, reg, d),
            None => out.push_str("any JSON"),
        },
        Format::Unit => out.push_str("null"),
        Format::Bool => out.push_str("true or false"),
        Format::I8 | Format::I16 | Format::I32 | Format::I64 | Format::I128 => {
            out.push_str("integer")
        }
        Format::U8 | Format::U16 | Format::U32 | Format::U64 | Format::U128 => {
            out.push_str("integer >= 0")
        }
        Format::F32 | Format::F64 => out.push_str("number"),
        Format::Char => out.push_str("one-character string"),
        Format::Str => out.push_str("string"),
        Format::Bytes => out.push_str("[integer 0-255, ...]"),
        Format::Option(inner) => {
            write(out, inner, reg, d);
            out.push_str(" or null");
        }
        Format::Seq(inner) => {
            out.push('[');
            write(out, inner, reg, d);
            out.push_str(", ...]");
        }
        Format::Map { key: _, value } => {
            out.push_str("{string: ");
            write(out, value, reg, d);
            out.push_str(", ...}");
        }
        Format::Tuple(items) => list(out, items, reg, d),
        Format::TupleArray { content, size } if *size <= 4 => {
            list(out, &vec![(**content).clone(); *size], reg, d)
        }
        Format::TupleArray { content, size } => {
            out.push('[');
            write(out, content, reg, d);
            let _ = write!(out, " x {size}]");
        }
    }
}

fn list(out: &mut String, items: &[Format], reg: &Registry, depth: usize) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(out, item, reg, depth);
    }
    out.push(']');
}

fn fields(out: &mut String, fields: &[Named<Format>], reg: &Registry, depth: usize) {
    out.push('{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{}\": ", field.name);
        write(out, &field.value, reg, depth);
    }
    out.push('}');
}

fn container(out: &mut String, c: &ContainerFormat, reg: &Registry, depth: usize) {
    match c {
        ContainerFormat::UnitStruct => out.push_str("null"),
        ContainerFormat::NewTypeStruct(inner) => write(out, inner, reg, depth),
        ContainerFormat::TupleStruct(items) => list(out, items, reg, depth),
        ContainerFormat::Struct(named) => fields(out, named, reg, depth),
        ContainerFormat::Enum(variants) => {
            out.push_str("one of ");
            for (i, v) in variants.values().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match &v.value {
                    VariantFormat::Unit => {
                        let _ = write!(out, "\"{}\"", v.name);
                    }
                    VariantFormat::NewType(inner) => {
                        let _ = write!(out, "{{\"{}\": ", v.name);
                        write(out, inner, reg, depth);
                        out.push('}');
                    }
                    VariantFormat::Tuple(items) => {
                        let _ = write!(out, "{{\"{}\": ", v.name);
                        list(out, items, reg, depth);
                        out.push('}');
                    }
                    VariantFormat::Struct(named) => {
                        let _ = write!(out, "{{\"{}\": ", v.name);
                        fields(out, named, reg, depth);
                        out.push('}');
                    }
                    VariantFormat::Variable(_) => {
                        let _ = write!(out, "{{\"{}\": any JSON}}", v.name);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Resize {
        path: String,
        width: u32,
        crop: Option<(i32, i32)>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Careful { retries: u8 },
    }

    #[test]
    fn shapes_read_like_json() {
        assert_eq!(of::<String>(), "string");
        assert_eq!(of::<()>(), "null");
        assert_eq!(of::<(u32, u32)>(), "[integer >= 0, integer >= 0]");
        assert_eq!(of::<Vec<f64>>(), "[number, ...]");
        assert_eq!(
            of::<Resize>(),
            r#"{"path": string, "width": integer >= 0, "crop": [integer, integer] or null}"#
        );
        assert_eq!(
            of::<Mode>(),
            r#"one of "fast", {"careful": {"retries": integer >= 0}}"#
        );
        assert_eq!(of::<serde_json::Value>(), ANY);
        assert_eq!(
            of::<std::collections::HashMap<String, bool>>(),
            "{string: true or false, ...}"
        );
    }
}
