//! HTML body -> plain text for the CRM's Description: one pass, no DOM. Block elements and
//! `<br>` become line breaks, `<li>` a bullet, `<style>`/`<script>`/`<head>` content is dropped,
//! entities are decoded, runs of spaces collapse and at most one blank line is kept.

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        "nbsp" => ' ',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            return char::from_u32(code);
        }
    })
}

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
];

/// Plain text of an HTML fragment or document.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut pending_space = false;
    let mut skip_until: Option<&'static str> = None;
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(stripped) = rest.strip_prefix('<') {
            let end = stripped.find('>').map(|i| i + 1).unwrap_or(stripped.len());
            let tag = &stripped[..end.saturating_sub(1).min(stripped.len())];
            rest = &stripped[end.min(stripped.len())..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if let Some(until) = skip_until {
                if closing && name == until {
                    skip_until = None;
                }
                continue;
            }
            match name.as_str() {
                "style" if !closing => skip_until = Some("style"),
                "script" if !closing => skip_until = Some("script"),
                "head" if !closing => skip_until = Some("head"),
                "li" if !closing => {
                    newline(&mut out);
                    out.push_str("- ");
                    pending_space = false;
                }
                "td" | "th" if closing => pending_space = true,
                n if BLOCKS.contains(&n) => {
                    newline(&mut out);
                    if matches!(n, "p" | "table" | "blockquote" | "h1" | "h2" | "h3") && closing {
                        blank_line(&mut out);
                    }
                    pending_space = false;
                }
                _ => {}
            }
            continue;
        }
        let ch = rest.chars().next().unwrap_or(' ');
        rest = &rest[ch.len_utf8()..];
        if skip_until.is_some() {
            continue;
        }
        let ch = if ch == '&' {
            match rest.find(';').filter(|&i| i <= 10) {
                Some(i) => match entity(&rest[..i]) {
                    Some(c) => {
                        rest = &rest[i + 1..];
                        c
                    }
                    None => '&',
                },
                None => '&',
            }
        } else {
            ch
        };
        if ch.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        pending_space = false;
        out.push(ch);
    }
    let trimmed = out.trim_end();
    let start = trimmed.len() - trimmed.trim_start().len();
    trimmed[start..].to_string()
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn blank_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn converts() {
        assert_eq!(
            to_text("<html><head><style>p{}</style></head><body><p>Hi&nbsp;Bob,</p><p>See   you<br>at 5 &amp; 6</p></body></html>"),
            "Hi Bob,\n\nSee you\nat 5 & 6"
        );
        assert_eq!(to_text("<ul><li>a</li><li>b</li></ul>"), "- a\n- b");
    }
}
