//! Test helpers: PNG header checks and a small XML well-formedness checker.

/// Width and height from a PNG's signature and IHDR chunk, checking its CRC.
pub(crate) fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 33 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    if crc.sum().to_be_bytes() != png[29..33] {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// Checks that `xml` is well formed: tags balance, attributes are quoted, entities
/// are known, and there is exactly one root element. Returns the error position.
pub(crate) fn check_xml(xml: &str) -> Result<(), String> {
    let b = xml.as_bytes();
    let mut i = 0;
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    while i < b.len() {
        if b[i] == b'<' {
            if xml[i..].starts_with("<?") {
                i = xml[i..].find("?>").ok_or(format!("unclosed <? at {i}"))? + i + 2;
            } else if xml[i..].starts_with("<!--") {
                i = xml[i..]
                    .find("-->")
                    .ok_or(format!("unclosed comment at {i}"))?
                    + i
                    + 3;
            } else if xml[i..].starts_with("<!") {
                i = xml[i..].find('>').ok_or(format!("unclosed <! at {i}"))? + i + 1;
            } else if xml[i..].starts_with("</") {
                let end = xml[i..]
                    .find('>')
                    .ok_or(format!("unclosed end tag at {i}"))?
                    + i;
                let name = xml[i + 2..end].trim();
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?} at {i}")),
                }
                i = end + 1;
            } else {
                let end = tag_end(xml, i)?;
                let inner = &xml[i + 1..end];
                let self_closing = inner.ends_with('/');
                let inner = inner.trim_end_matches('/');
                let name = inner.split_whitespace().next().unwrap_or("");
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_alphanumeric() || ":-_.".contains(c))
                {
                    return Err(format!("bad tag name {name:?} at {i}"));
                }
                check_attrs(&inner[name.len()..]).map_err(|e| format!("{e} at {i}"))?;
                if stack.is_empty() {
                    roots += 1;
                }
                if !self_closing {
                    stack.push(name);
                }
                i = end + 1;
            }
        } else if b[i] == b'&' {
            let end = xml[i..].find(';').ok_or(format!("bare & at {i}"))? + i;
            let ent = &xml[i + 1..end];
            let known = ["lt", "gt", "amp", "quot", "apos"].contains(&ent)
                || (ent.starts_with('#') && ent.len() > 1);
            if !known {
                return Err(format!("unknown entity &{ent}; at {i}"));
            }
            i = end + 1;
        } else {
            if !b[i].is_ascii_whitespace() && stack.is_empty() {
                return Err(format!("text outside the root at {i}"));
            }
            i += 1;
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed tags {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

fn tag_end(xml: &str, start: usize) -> Result<usize, String> {
    let mut quote = None;
    for (k, c) in xml[start..].char_indices() {
        match (quote, c) {
            (None, '"') | (None, '\'') => quote = Some(c),
            (Some(q), c) if q == c => quote = None,
            (None, '>') => return Ok(start + k),
            (None, '<') if k > 0 => return Err(format!("'<' inside tag at {start}")),
            _ => {}
        }
    }
    Err(format!("unclosed tag at {start}"))
}

fn check_attrs(mut s: &str) -> Result<(), String> {
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(());
        }
        let eq = s.find('=').ok_or("attribute without value")?;
        let name = s[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name {name:?}"));
        }
        let rest = s[eq + 1..].trim_start();
        let q = rest.chars().next().ok_or("missing attribute value")?;
        if q != '"' && q != '\'' {
            return Err("unquoted attribute".into());
        }
        let close = rest[1..].find(q).ok_or("unterminated attribute")? + 1;
        if rest[1..close].contains('<') {
            return Err("'<' in attribute".into());
        }
        s = &rest[close + 1..];
    }
}

#[test]
fn xml_checker_catches_errors() {
    assert!(check_xml("<svg a=\"1\"><g><text>a &amp; b</text></g><rect/></svg>").is_ok());
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg a=1></svg>").is_err());
    assert!(check_xml("<svg>a & b</svg>").is_err());
    assert!(check_xml("<a></a><b></b>").is_err());
}
