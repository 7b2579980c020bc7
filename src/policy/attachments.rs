//! The attachment rule: how many, how big, and which types a store takes.
//! A file's type is judged by its name (the last extension, whatever case,
//! trailing dots and spaces, RFC 2231 or encoded-word names), by its
//! declared MIME type and by what its bytes are (a program named
//! `invoice.pdf`), inside nested messages and inside zip archives, whose
//! directory is read without extracting anything (nested archives are
//! decompressed within a fixed budget).

use std::io::{Cursor, Read};

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::settings::AttachmentPolicy;

/// How deep nested messages and archives are followed.
const MAX_DEPTH: usize = 4;
/// Bytes nested archives may decompress to, in all, per message.
const DECOMPRESS_BUDGET: u64 = 16 * 1024 * 1024;
/// Entries an archive may have before it is taken for a bomb.
const MAX_ARCHIVE_ENTRIES: usize = 10_000;

/// Why a message's attachments are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentProblem {
    /// `name` (or, unnamed, a part of `kind`) is of a refused type.
    Refused {
        /// The file's name (or a made-up one for an unnamed part).
        name: String,
        /// The part's declared or detected type.
        kind: String,
    },
    /// An archive that cannot be read, so cannot be checked.
    Unreadable {
        /// The archive's file name.
        name: String,
    },
    /// More attachments than the store allows.
    TooMany {
        /// How many the message has.
        count: u32,
        /// How many the store allows.
        max: u32,
    },
    /// More attachment bytes than the store allows.
    TooBig {
        /// The decoded size of the attachments.
        bytes: u64,
        /// The store's limit.
        max: u64,
    },
}

/// Whether a message with this header can have an attachment at all, so
/// that it is worth parsing whole: not when its one Content-Type is text
/// (or missing, which means text/plain) without a file name, and nothing
/// says it is an attachment. Reading a message's MIME structure costs as
/// much as its body is long.
pub fn may_have_attachments(header: &crate::masking::Parsed<'_>) -> bool {
    let mut types = header.fields.iter().filter(|f| f.is("content-type"));
    let plain_text = match (types.next(), types.next()) {
        (None, _) => true,
        (Some(f), None) => {
            let value = String::from_utf8_lossy(f.value).to_ascii_lowercase();
            value.trim_start().starts_with("text/") && !value.contains("name")
        }
        _ => false,
    };
    !plain_text || header.fields.iter().any(|f| f.is("content-disposition"))
}

/// The first problem with `message`'s attachments, if any.
pub fn check(message: &Message<'_>, policy: &AttachmentPolicy) -> Option<AttachmentProblem> {
    let mut walk = Walk {
        policy,
        count: 0,
        bytes: 0,
        budget: DECOMPRESS_BUDGET,
    };
    if let Some(p) = walk.message(message, 0) {
        return Some(p);
    }
    if walk.count > policy.max_count {
        return Some(AttachmentProblem::TooMany {
            count: walk.count,
            max: policy.max_count,
        });
    }
    if walk.bytes > policy.max_total_bytes {
        return Some(AttachmentProblem::TooBig {
            bytes: walk.bytes,
            max: policy.max_total_bytes,
        });
    }
    None
}

struct Walk<'p> {
    policy: &'p AttachmentPolicy,
    count: u32,
    bytes: u64,
    budget: u64,
}

impl Walk<'_> {
    fn message(&mut self, message: &Message<'_>, depth: usize) -> Option<AttachmentProblem> {
        let bodies: Vec<u32> = message
            .text_body
            .iter()
            .chain(&message.html_body)
            .copied()
            .collect();
        for (i, part) in message.parts.iter().enumerate() {
            if matches!(part.body, PartType::Multipart(_)) {
                continue;
            }
            let named = part.attachment_name().is_some();
            if bodies.contains(&(i as u32)) && !named {
                continue;
            }
            if let Some(p) = self.part(part, depth) {
                return Some(p);
            }
        }
        None
    }

    fn part(&mut self, part: &MessagePart<'_>, depth: usize) -> Option<AttachmentProblem> {
        let embedded = part.content_id().is_some()
            && part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
        if !embedded {
            self.count = self.count.saturating_add(1);
        }
        self.bytes = self.bytes.saturating_add(part.len() as u64);
        let name = part.attachment_name().unwrap_or_default().to_string();
        let refused = |kind: &str| AttachmentProblem::Refused {
            name: name.clone(),
            kind: kind.to_string(),
        };
        if let Some(ext) = extension(&name).filter(|e| self.blocked(e)) {
            return Some(refused(&ext));
        }
        let declared = part
            .content_type()
            .map(|ct| {
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
            })
            .unwrap_or_default();
        if declared_extension(&declared).is_some_and(|e| self.blocked(e)) {
            return Some(refused(&declared));
        }
        if let PartType::Message(nested) = &part.body {
            return if depth < MAX_DEPTH {
                self.message(nested, depth + 1)
            } else {
                Some(AttachmentProblem::Unreadable { name })
            };
        }
        let bytes = part.contents();
        if let Some(ext) = sniffed_extension(bytes).filter(|e| self.blocked(e)) {
            return Some(refused(ext));
        }
        if is_zip(bytes) {
            return match self.archive(bytes, depth) {
                Ok(None) => None,
                Ok(Some(ext)) => Some(refused(&ext)),
                Err(()) => Some(AttachmentProblem::Unreadable { name }),
            };
        }
        None
    }

    fn blocked(&self, ext: &str) -> bool {
        self.policy
            .blocked_extensions
            .iter()
            .any(|b| b.eq_ignore_ascii_case(ext))
    }

    /// The refused type inside a zip archive (`Ok(None)`: none), or `Err`
    /// for an archive that cannot be read within the limits.
    fn archive(&mut self, bytes: &[u8], depth: usize) -> Result<Option<String>, ()> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|_| ())?;
        if zip.len() > MAX_ARCHIVE_ENTRIES {
            return Err(());
        }
        let mut nested = Vec::new();
        for i in 0..zip.len() {
            let entry = zip.by_index_raw(i).map_err(|_| ())?;
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            let lower = name.to_ascii_lowercase();
            let inner_kind = if lower == "meta-inf/manifest.mf" {
                Some("jar".to_string())
            } else if lower.ends_with("vbaproject.bin") {
                Some(
                    match lower.split('/').next() {
                        Some("xl") => "xlsm",
                        Some("ppt") => "pptm",
                        _ => "docm",
                    }
                    .to_string(),
                )
            } else {
                extension(&name)
            };
            if let Some(ext) = inner_kind.filter(|e| self.blocked(e)) {
                return Ok(Some(format!("{ext} in {name}")));
            }
            if extension(&name).as_deref() == Some("zip") {
                nested.push(i);
            }
        }
        for i in nested {
            if depth + 1 >= MAX_DEPTH {
                return Err(());
            }
            let mut entry = zip.by_index(i).map_err(|_| ())?;
            let mut inner = Vec::new();
            let read = (&mut entry)
                .take(self.budget + 1)
                .read_to_end(&mut inner)
                .map_err(|_| ())?;
            if read as u64 > self.budget {
                return Err(());
            }
            self.budget -= read as u64;
            if let Some(found) = self.archive(&inner, depth + 1)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// The extension a file name ends with, lowercase: after the last dot, once
/// trailing dots and white space (which Windows drops) are gone.
pub fn extension(name: &str) -> Option<String> {
    let trimmed = name.trim_end_matches(|c: char| c == '.' || c.is_whitespace() || c.is_control());
    let (stem, ext) = trimmed.rsplit_once('.')?;
    let ext = ext.trim();
    (!stem.is_empty() && !ext.is_empty() && !ext.contains(['/', '\\'])).then(|| ext.to_lowercase())
}

/// The extension a declared MIME type stands for, for the types that carry
/// programs, scripts and macros.
fn declared_extension(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "application/x-msdownload"
        | "application/x-msdos-program"
        | "application/x-dosexec"
        | "application/x-executable"
        | "application/vnd.microsoft.portable-executable"
        | "application/exe"
        | "application/x-exe" => "exe",
        "application/x-msi" | "application/x-ms-installer" => "msi",
        "application/java-archive" | "application/x-java-archive" | "application/x-jar" => "jar",
        "application/javascript"
        | "application/x-javascript"
        | "text/javascript"
        | "application/ecmascript" => "js",
        "text/vbscript" | "application/x-vbscript" => "vbs",
        "application/hta" => "hta",
        "application/x-bat" | "application/bat" | "application/x-msdos-batch" => "bat",
        "application/x-sh" | "application/x-shellscript" | "text/x-shellscript" => "sh",
        "application/x-powershell" => "ps1",
        "application/x-ms-shortcut" => "lnk",
        "application/x-iso9660-image" => "iso",
        "application/vnd.ms-word.document.macroenabled.12" => "docm",
        "application/vnd.ms-word.template.macroenabled.12" => "dotm",
        "application/vnd.ms-excel.sheet.macroenabled.12" => "xlsm",
        "application/vnd.ms-excel.template.macroenabled.12" => "xltm",
        "application/vnd.ms-excel.addin.macroenabled.12" => "xlam",
        "application/vnd.ms-powerpoint.presentation.macroenabled.12" => "pptm",
        "application/vnd.ms-powerpoint.template.macroenabled.12" => "potm",
        _ => return None,
    })
}

/// What a file's first bytes say it is, for the kinds a name can hide.
fn sniffed_extension(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"MZ") || bytes.starts_with(b"\x7fELF") {
        Some("exe")
    } else if bytes.starts_with(b"#!") {
        Some("sh")
    } else if bytes.starts_with(b"L\x00\x00\x00\x01\x14\x02\x00") {
        Some("lnk")
    } else if bytes.get(0x8001..0x8006) == Some(b"CD001") {
        Some("iso")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "attachments_tests.rs"]
mod tests;
