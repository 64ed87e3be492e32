//! The CSV that Entra ID's "Download users" produces (E2), read leniently: a UTF-8 byte order
//! mark, quoted fields (with `""` escapes and line breaks inside), CRLF or LF, extra columns in
//! any order, and header spellings from the portal's variants (`userPrincipalName`,
//! `User principal name`, `Name [displayName]`...). Every row keeps the line it starts on, so
//! a bad row is reported by file and line while the rest is imported.

/// A record of a CSV file and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The line the record starts on (a quoted field may span lines).
    pub line: usize,
    /// The fields, unquoted and unescaped.
    pub fields: Vec<String>,
}

/// A CSV file that cannot be read as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A quoted field runs to the end of the file.
    #[error("line {line}: a quoted field is never closed (the rest of the file is inside it)")]
    UnclosedQuote {
        /// The line the quoted field opens on.
        line: usize,
    },
    /// A `"` in the middle of an unquoted field.
    #[error(
        "line {line}: a quote inside an unquoted field; quote the whole field and double the quote"
    )]
    StrayQuote {
        /// The line of the quote.
        line: usize,
    },
    /// Text between a closing quote and the next comma.
    #[error("line {line}: text after a closing quote; fields are separated by commas")]
    AfterQuote {
        /// The line of the text.
        line: usize,
    },
}

impl CsvError {
    /// The line the problem is on.
    pub fn line(&self) -> usize {
        match self {
            CsvError::UnclosedQuote { line }
            | CsvError::StrayQuote { line }
            | CsvError::AfterQuote { line } => *line,
        }
    }

    /// The problem without its line (for reports that name the line themselves).
    pub fn problem(&self) -> &'static str {
        match self {
            CsvError::UnclosedQuote { .. } => {
                "a quoted field is never closed (the rest of the file is inside it)"
            }
            CsvError::StrayQuote { .. } => {
                "a quote inside an unquoted field; quote the whole field and double the quote"
            }
            CsvError::AfterQuote { .. } => {
                "text after a closing quote; fields are separated by commas"
            }
        }
    }
}

/// Splits CSV text into records (RFC 4180, lenient about line endings). Blank lines are skipped.
/// A malformed record is an `Err` naming its line, and reading goes on with the next line, so
/// one bad row does not hide the others (an unclosed quote takes the rest of the file with it).
pub fn records(text: &str) -> Vec<Result<Record, CsvError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        let mut error = None;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    error = Some(CsvError::UnclosedQuote { line: start });
                }
                break;
            };
            if error.is_some() {
                // Skip the rest of a malformed line.
                if c == '\n' {
                    line += 1;
                    break;
                }
                continue;
            }
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => {
                        quoted = false;
                        if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                            error = Some(CsvError::AfterQuote { line });
                        }
                    }
                    '\n' => {
                        line += 1;
                        field.push('\n');
                    }
                    c => field.push(c),
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '"' if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                }
                '"' => error = Some(CsvError::StrayQuote { line }),
                '\r' if chars.peek() == Some(&'\n') => {}
                '\r' | '\n' => {
                    line += 1;
                    break;
                }
                c => field.push(c),
            }
        }
        if let Some(e) = error {
            out.push(Err(e));
            continue;
        }
        fields.push(field);
        if !(fields.len() == 1 && fields[0].trim().is_empty()) {
            out.push(Ok(Record {
                line: start,
                fields,
            }));
        }
    }
    out
}

/// The columns the import uses, wherever they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// `userPrincipalName`: the user's sign-in name.
    pub upn: Option<usize>,
    /// `displayName`.
    pub display_name: Option<usize>,
    /// `mail`: the primary SMTP address; empty for a user without a mailbox.
    pub mail: Option<usize>,
    /// `userType`: `Member` or `Guest` (guests are skipped).
    pub user_type: Option<usize>,
    /// `accountEnabled`: false for a blocked sign-in (skipped).
    pub account_enabled: Option<usize>,
    /// "Block sign in" (the Microsoft 365 admin center's export): the opposite of enabled.
    pub block_sign_in: Option<usize>,
    /// The directory object id (`id`, `objectId`), a Graph id without a lookup.
    pub object_id: Option<usize>,
    /// How many columns the header has.
    pub width: usize,
}

/// `Name [displayName] Required` -> `displayname`; `User principal name` -> `userprincipalname`.
fn normalise(header: &str) -> String {
    let h = match (header.find('['), header.find(']')) {
        (Some(a), Some(b)) if a < b => &header[a + 1..b],
        _ => header,
    };
    h.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

impl Columns {
    /// Finds the columns by name; `None` when the header has neither a UPN nor a mail column.
    pub fn from_header(header: &[String]) -> Option<Columns> {
        let mut c = Columns {
            width: header.len(),
            ..Columns::default()
        };
        for (i, h) in header.iter().enumerate() {
            // The portal's "Block sign in (Yes/No) [accountEnabled]" means the opposite of its
            // property name: its "Yes" is a disabled account.
            let blocked = h
                .to_ascii_lowercase()
                .replace(' ', "")
                .contains("blocksignin");
            let key = if blocked {
                "blocksignin".to_string()
            } else {
                normalise(h)
            };
            let slot = match key.as_str() {
                "userprincipalname" | "upn" => &mut c.upn,
                "displayname" | "name" => &mut c.display_name,
                "mail" | "email" | "emailaddress" | "primarysmtpaddress" => &mut c.mail,
                "usertype" => &mut c.user_type,
                "accountenabled" => &mut c.account_enabled,
                "blocksignin" | "blockcredential" => &mut c.block_sign_in,
                "id" | "objectid" => &mut c.object_id,
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        (c.upn.is_some() || c.mail.is_some()).then_some(c)
    }
}

/// One user row of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraUser {
    /// The line the row starts on, for reports.
    pub line: usize,
    /// The UPN, lower-cased (the mail address when the file has no UPN).
    pub user_principal_name: String,
    /// The display name; empty when the file has none.
    pub display_name: String,
    /// The primary SMTP address; `None` when the file has no mail column.
    pub mail: Option<String>,
    /// The directory object id, when the file has one.
    pub object_id: Option<String>,
}

impl EntraUser {
    /// The mailbox's address: its mail, else its UPN.
    pub fn address(&self) -> String {
        self.mail
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.user_principal_name)
            .to_ascii_lowercase()
    }
}

/// Why a row is left out on purpose (not an error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Sign-in blocked: a departed user, or a shared mailbox (those need a nominated user).
    Disabled,
    /// A guest from another organization: no mailbox in this tenant.
    Guest,
    /// No mail address: the user has no Exchange Online mailbox.
    NoMailbox,
    /// The same user appeared earlier in the file.
    Duplicate {
        /// The line the user first appeared on.
        first_line: usize,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("account disabled (a shared mailbox? add it with `m365sync mailbox add --shared --user NOMINATED`)"),
            SkipReason::Guest => f.write_str("guest user: no mailbox in this tenant"),
            SkipReason::NoMailbox => f.write_str("no mail address: the user has no mailbox"),
            SkipReason::Duplicate { first_line } => write!(f, "already on line {first_line}"),
        }
    }
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A user to import.
    User(EntraUser),
    /// Left out on purpose (guest, disabled, no mailbox, duplicate).
    Skipped {
        /// The line the row starts on.
        line: usize,
        /// The row's UPN.
        who: String,
        /// Why it was left out.
        reason: SkipReason,
    },
    /// A row that cannot be read as a user; the rest of the file goes on.
    Bad {
        /// The line the row starts on.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

fn yes_no(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn is_address(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
}

/// Reads the users of an Entra "Download users" file: the header (after an optional
/// `version:` line, as bulk templates have), then one [`Row`] per record.
pub fn entra_users(text: &str) -> Result<Vec<Row>, EntraCsvError> {
    let mut recs = records(text).into_iter().peekable();
    if recs.peek().is_some_and(|r| {
        r.as_ref().is_ok_and(|r| {
            r.fields[0]
                .trim()
                .to_ascii_lowercase()
                .starts_with("version:")
        })
    }) {
        recs.next();
    }
    let header = recs
        .next()
        .ok_or(EntraCsvError::Empty)?
        .map_err(EntraCsvError::Csv)?;
    let cols = Columns::from_header(&header.fields)
        .ok_or(EntraCsvError::NoUserColumn { line: header.line })?;
    let mut seen = std::collections::HashMap::new();
    let mut rows = Vec::new();
    for r in recs {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let line = e.line();
                rows.push(Row::Bad {
                    line,
                    message: e.problem().to_string(),
                });
                continue;
            }
        };
        let get = |i: Option<usize>| {
            i.and_then(|i| r.fields.get(i))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let bad = |message: String| Row::Bad {
            line: r.line,
            message,
        };
        if r.fields.len() > cols.width {
            rows.push(bad(format!(
                "{} fields, but the header has {} (an unquoted comma?)",
                r.fields.len(),
                cols.width
            )));
            continue;
        }
        let mail = cols.mail.map(|i| get(Some(i)).to_ascii_lowercase());
        let upn = match get(cols.upn) {
            u if u.is_empty() => mail.clone().unwrap_or_default(),
            u => u.to_ascii_lowercase(),
        };
        if upn.is_empty() {
            rows.push(bad("no userPrincipalName".into()));
            continue;
        }
        if !is_address(&upn) {
            rows.push(bad(format!("userPrincipalName '{upn}' is not an address")));
            continue;
        }
        if let Some(m) = mail.as_deref().filter(|m| !m.is_empty() && !is_address(m)) {
            rows.push(bad(format!("mail '{m}' is not an address")));
            continue;
        }
        let enabled = match (cols.account_enabled, cols.block_sign_in) {
            (Some(i), _) if !get(Some(i)).is_empty() => match yes_no(&get(Some(i))) {
                Some(v) => v,
                None => {
                    rows.push(bad(format!(
                        "accountEnabled '{}' is neither true nor false",
                        get(Some(i))
                    )));
                    continue;
                }
            },
            (_, Some(i)) if !get(Some(i)).is_empty() => match yes_no(&get(Some(i))) {
                Some(v) => !v,
                None => {
                    rows.push(bad(format!(
                        "Block sign in '{}' is neither yes nor no",
                        get(Some(i))
                    )));
                    continue;
                }
            },
            _ => true,
        };
        let skip = |reason| Row::Skipped {
            line: r.line,
            who: upn.clone(),
            reason,
        };
        if get(cols.user_type).eq_ignore_ascii_case("guest") || upn.contains("#ext#") {
            rows.push(skip(SkipReason::Guest));
            continue;
        }
        if !enabled {
            rows.push(skip(SkipReason::Disabled));
            continue;
        }
        if mail.as_deref() == Some("") {
            rows.push(skip(SkipReason::NoMailbox));
            continue;
        }
        let user = EntraUser {
            line: r.line,
            user_principal_name: upn.clone(),
            display_name: get(cols.display_name),
            mail,
            object_id: Some(get(cols.object_id)).filter(|s| !s.is_empty()),
        };
        if let Some(first_line) = seen.get(&user.address()) {
            rows.push(skip(SkipReason::Duplicate {
                first_line: *first_line,
            }));
            continue;
        }
        seen.insert(user.address(), r.line);
        rows.push(Row::User(user));
    }
    Ok(rows)
}

/// A file that is not a users CSV at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntraCsvError {
    /// The header itself is not valid CSV.
    #[error(transparent)]
    Csv(CsvError),
    /// No header at all.
    #[error("the file is empty; download it from Entra ID (Users > Download users)")]
    Empty,
    /// A header without a UPN or mail column: some other CSV.
    #[error("line {line}: the header has no userPrincipalName or mail column; is this Entra's \"Download users\" file?")]
    NoUserColumn {
        /// The header's line.
        line: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_line_breaks_and_bom() {
        let r: Vec<Record> =
            records("\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"multi\nline\",z\n")
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].fields, ["a", "b"]);
        assert_eq!(r[1].fields, ["x, y", "say \"hi\""]);
        assert_eq!((r[2].line, r[2].fields[0].as_str()), (4, "multi\nline"));
        let r = records("a\nb\"c,d\ne\n\"open\n");
        assert_eq!(r[1], Err(CsvError::StrayQuote { line: 2 }));
        assert_eq!(
            r[2].as_ref().unwrap().fields,
            ["e"],
            "reading goes on after a bad line"
        );
        assert_eq!(r[3], Err(CsvError::UnclosedQuote { line: 4 }));
    }

    #[test]
    fn entra_rows_are_checked_and_skipped_with_reasons() {
        let text = "id,userPrincipalName,displayName,mail,userType,accountEnabled,department\n\
            1,Alice@Contoso.example,Alice Adams,alice@contoso.example,Member,True,Sales\n\
            2,guest_x.example#EXT#@contoso.example,Guest,g@x.example,Guest,True,\n\
            3,info@contoso.example,Info,info@contoso.example,Member,False,\n\
            4,not-an-address,Bad,,Member,True,\n\
            5,nomail@contoso.example,No Mail,,Member,True,\n\
            6,alice@contoso.example,Again,alice@contoso.example,Member,True,\n";
        let rows = entra_users(text).unwrap();
        assert!(
            matches!(&rows[0], Row::User(u) if u.address() == "alice@contoso.example" && u.line == 2)
        );
        assert!(matches!(
            &rows[1],
            Row::Skipped {
                reason: SkipReason::Guest,
                ..
            }
        ));
        assert!(matches!(
            &rows[2],
            Row::Skipped {
                reason: SkipReason::Disabled,
                ..
            }
        ));
        assert!(matches!(&rows[3], Row::Bad { line: 5, .. }));
        assert!(matches!(
            &rows[4],
            Row::Skipped {
                reason: SkipReason::NoMailbox,
                ..
            }
        ));
        assert!(matches!(
            &rows[5],
            Row::Skipped {
                reason: SkipReason::Duplicate { first_line: 2 },
                ..
            }
        ));
        let portal = "version:v1.0\nName [displayName] Required,User name [userPrincipalName] Required,Block sign in (Yes/No) [accountEnabled] Required\nBob,bob@c.example,No\n";
        assert!(
            matches!(&entra_users(portal).unwrap()[0], Row::User(u) if u.display_name == "Bob")
        );
        assert_eq!(
            entra_users("a,b\n1,2\n").unwrap_err(),
            EntraCsvError::NoUserColumn { line: 1 }
        );
    }
}
