//! The element-header walker: dicom-parser 0.10's `DataSetReader`, token for token, without
//! reading a value.
//!
//! The walk exists to predict what the parser will allocate, so it follows the parser, not
//! only the standard: where they differ, the parser's reading is the one that allocates.
//! - Every element of undefined length other than Pixel Data is read as a sequence of items
//!   in the data set's own encoding. That includes UN: PS3.5 6.2.2 says an undefined-length UN
//!   holds Implicit VR Little Endian, but dicom-parser 0.10 keeps the data set's decoder, so the
//!   walk does too (read as Implicit VR, a conformant UN can still make the parser zero-fill
//!   gigabytes: see `tests` in `check.rs`).
//! - Undefined-length Pixel Data is encapsulated at any depth: an offset table and fragments,
//!   whose declared lengths the parser allocates.
//! - An item header outside a sequence is an element whose value the parser reads; an Item
//!   Delimitation Item at the top level is skipped.
//! - Defined-length sequences and items end where the parser's bookkeeping ends them.
//!
//! Where the parser would fail, the walk stops ([`Outcome::ParserFails`]): nothing after that
//! point is read by either.

use std::cmp::Ordering;
use std::ops::ControlFlow;

use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::header::{HasLength, Header, SequenceItemHeader};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_encoding::TransferSyntax;

/// Item (FFFE,E000).
const ITEM: Tag = Tag(0xFFFE, 0xE000);
/// Item Delimitation Item (FFFE,E00D).
const ITEM_DELIMITATION: Tag = Tag(0xFFFE, 0xE00D);

/// An element header met at the element level of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementAt {
    /// Offset of the header in the walked bytes.
    pub at: usize,
    /// The tag.
    pub tag: Tag,
    /// The VR (from the header, or the dictionary in Implicit VR).
    pub vr: VR,
    /// Declared length; `None` for undefined.
    pub len: Option<u32>,
    /// Open sequences and items around it (0: top level).
    pub depth: usize,
}

/// How a walk ended, when it found nothing to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes ended where the parser ends gracefully.
    End,
    /// The parser fails at `at` (a header it cannot read, an inconsistent end, an unexpected
    /// item) and reads nothing after it.
    ParserFails {
        /// Offset where it fails.
        at: usize,
    },
    /// The visitor stopped the walk.
    Stopped,
    /// The transfer syntax has no element decoder (unknown, or deflated and not inflated).
    Unsupported,
}

/// Why the walk refuses a data set: reading it would allocate more than the bytes present, or
/// it is cut short, nested too deep or ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A value, item or fragment declares more bytes than are left.
    #[error("{tag} at byte {at} declares {declared} bytes, only {available} follow")]
    TooLong {
        /// Offset of the header.
        at: usize,
        /// Its tag.
        tag: Tag,
        /// Declared length.
        declared: u32,
        /// Bytes left after the header.
        available: usize,
    },
    /// Encapsulated Pixel Data ends without its Sequence Delimitation Item (the file was cut
    /// after a fragment; dicom-parser accepts it, destinations refuse it forever).
    #[error("encapsulated Pixel Data has no Sequence Delimitation Item (cut at byte {at})")]
    Unterminated {
        /// Where the bytes end.
        at: usize,
    },
    /// Sequences nested deeper than [`MAX_NESTING`]: the parser builds them recursively and a
    /// deep enough nesting overflows its thread's stack.
    #[error("sequences nested deeper than {max} levels at byte {at}")]
    TooDeep {
        /// Offset of the header that went too deep.
        at: usize,
        /// The limit.
        max: usize,
    },
    /// An SQ header on a US/SS attribute: the parser may read it as a value or as a sequence
    /// (it decides from Pixel Representation), so its structure cannot be checked.
    #[error("{tag} at byte {at} is a US/SS attribute encoded as a sequence")]
    Ambiguous {
        /// Offset of the header.
        at: usize,
        /// Its tag.
        tag: Tag,
    },
    /// A binary value (US, FL, AT, OW, the Basic Offset Table...) whose length is not a multiple
    /// of its element size: dicom-parser 0.10 reads the whole elements only but counts the
    /// declared length, so it loses its place in the bytes and reads later headers from the
    /// middle of values (where the walk cannot follow it).
    #[error("{tag} ({vr:?}) at byte {at} has {declared} bytes, not a multiple of {size}")]
    Misaligned {
        /// Offset of the header.
        at: usize,
        /// Its tag.
        tag: Tag,
        /// Its VR as the parser reads it.
        vr: VR,
        /// Declared length.
        declared: u32,
        /// Size of one element of the VR.
        size: u32,
    },
    /// A Deflated data set inflates to more than the configured maximum.
    #[error("the deflated data set inflates to more than {max} bytes")]
    InflatesTooLarge {
        /// The maximum.
        max: usize,
    },
    /// A Deflated data set is not a valid deflate stream.
    #[error("the deflated data set does not inflate: {0}")]
    Inflate(String),
}

/// Sequences nested deeper than this are refused. Radiographs nest a few levels (a code
/// sequence in a sequence item); structured reports rarely pass 15. dicom-object builds nested
/// sequences recursively: at a few thousand levels (20 bytes each) it overflowed the 2 MiB
/// stack of the thread that parsed it and took the process down.
pub const MAX_NESTING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequence,
    Item,
}

/// An open sequence or item: the parser's `SeqToken`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    /// Inside encapsulated Pixel Data.
    pixel: bool,
    /// Where the content starts.
    base: usize,
    /// Defined length.
    len: Option<usize>,
}

impl Frame {
    fn end(&self) -> Option<usize> {
        self.len.map(|n| self.base + n)
    }
}

/// Walks the element headers of `data`, encoded in `ts`, calling `visit` for each element
/// header at the element level (item headers and fragments are not visited). Returns how it
/// ended, or why the data set must be refused.
pub fn walk<F>(data: &[u8], ts: &TransferSyntax, mut visit: F) -> Result<Outcome, Refusal>
where
    F: FnMut(&ElementAt) -> ControlFlow<()>,
{
    if crate::syntax::is_deflated(ts.uid()) {
        return Ok(Outcome::Unsupported);
    }
    let Some(decoder) = ts.decoder_for::<&[u8]>() else {
        return Ok(Outcome::Unsupported);
    };
    let mut rest: &[u8] = data;
    let mut stack: Vec<Frame> = Vec::new();
    // The parser's `in_sequence`, `delimiter_check_pending` and "last header was encapsulated
    // Pixel Data".
    let mut in_sequence = false;
    let mut pending = false;
    let mut encapsulated_next = false;
    loop {
        let at = data.len() - rest.len();
        if pending {
            if let Some(end) = stack.last().and_then(Frame::end) {
                match end.cmp(&at) {
                    Ordering::Equal => {
                        let closed = stack.pop().map(|f| f.kind);
                        in_sequence = closed == Some(Kind::Item);
                        continue;
                    }
                    Ordering::Less => return Ok(Outcome::ParserFails { at }),
                    Ordering::Greater => {}
                }
            }
            pending = false;
        }
        if stack.len() > MAX_NESTING * 2 {
            return Err(Refusal::TooDeep {
                at,
                max: MAX_NESTING,
            });
        }
        if in_sequence || encapsulated_next {
            if encapsulated_next {
                stack.push(Frame {
                    kind: Kind::Sequence,
                    pixel: true,
                    base: at,
                    len: None,
                });
            }
            let header = match decoder.decode_item_header(&mut rest) {
                Ok(header) => header,
                Err(_) if in_sequence && data.len() - at < 8 => {
                    // The parser ends gracefully at the end of the bytes inside Pixel Data:
                    // fragments without their delimiter.
                    return match stack.last() {
                        Some(f) if f.pixel => Err(Refusal::Unterminated { at }),
                        _ => Ok(Outcome::ParserFails { at }),
                    };
                }
                Err(_) => return Ok(Outcome::ParserFails { at }),
            };
            let first_of_pixels = std::mem::take(&mut encapsulated_next);
            match header {
                SequenceItemHeader::Item { len } => {
                    let Some(parent) = stack.last() else {
                        return Ok(Outcome::ParserFails { at });
                    };
                    let pixel = parent.pixel;
                    let len = len.get();
                    if let Some(n) = len {
                        fits(at, ITEM, n, rest.len())?;
                        if first_of_pixels {
                            // The Basic Offset Table: u32 offsets.
                            aligned(at, ITEM, VR::UL, n)?;
                        }
                    }
                    in_sequence = false;
                    stack.push(Frame {
                        kind: Kind::Item,
                        pixel,
                        base: at + 8,
                        len: len.map(|n| n as usize),
                    });
                    if len == Some(0) {
                        pending = true;
                    }
                }
                SequenceItemHeader::ItemDelimiter if !first_of_pixels => {
                    stack.pop();
                    in_sequence = true;
                    pending = true;
                }
                SequenceItemHeader::SequenceDelimiter => {
                    stack.pop();
                    in_sequence = false;
                    pending = !first_of_pixels;
                }
                SequenceItemHeader::ItemDelimiter => return Ok(Outcome::ParserFails { at }),
            }
            continue;
        }
        if let Some(item) = stack
            .last()
            .filter(|f| f.kind == Kind::Item && f.pixel)
            .copied()
        {
            // The offset table or a fragment: the parser allocates its declared length.
            let Some(n) = item.len else {
                return Ok(Outcome::ParserFails { at });
            };
            // Checked against the bytes left when the item was opened.
            rest = &rest[n..];
            pending = true;
            continue;
        }
        // Element level.
        let header = match decoder.decode_header(&mut rest) {
            Ok((header, _)) => header,
            Err(_) if data.len() - at < 4 => {
                return Ok(if stack.is_empty() {
                    Outcome::End
                } else {
                    Outcome::ParserFails { at }
                })
            }
            Err(_) => return Ok(Outcome::ParserFails { at }),
        };
        let tag = header.tag();
        let len = header.length().get();
        if header.vr == VR::SQ && is_us_or_ss(tag) {
            return Err(Refusal::Ambiguous { at, tag });
        }
        let element = ElementAt {
            at,
            tag,
            vr: header.vr,
            len,
            depth: stack.len(),
        };
        if visit(&element).is_break() {
            return Ok(Outcome::Stopped);
        }
        let here = data.len() - rest.len();
        if header.vr == VR::SQ {
            if let Some(n) = len {
                fits(at, tag, n, rest.len())?;
            }
            in_sequence = true;
            stack.push(Frame {
                kind: Kind::Sequence,
                pixel: false,
                base: here,
                len: len.map(|n| n as usize),
            });
            if len == Some(0) {
                pending = true;
            }
        } else if tag == ITEM_DELIMITATION {
            if !stack.is_empty() {
                stack.pop();
                in_sequence = true;
                pending = true;
            }
        } else if tag == tags::PIXEL_DATA && len.is_none() {
            encapsulated_next = true;
        } else if let Some(n) = len {
            fits(at, tag, n, rest.len())?;
            // US or SS by Pixel Representation: 2 bytes either way, whatever the header says.
            let vr = if is_us_or_ss(tag) { VR::US } else { header.vr };
            aligned(at, tag, vr, n)?;
            rest = &rest[n as usize..];
            pending = true;
        } else {
            // Undefined length elsewhere (UN among them): a sequence, as the parser reads it.
            in_sequence = true;
            stack.push(Frame {
                kind: Kind::Sequence,
                pixel: false,
                base: here,
                len: None,
            });
        }
    }
}

/// Refuses a declared length longer than the bytes left.
fn fits(at: usize, tag: Tag, declared: u32, available: usize) -> Result<(), Refusal> {
    if declared as usize > available {
        return Err(Refusal::TooLong {
            at,
            tag,
            declared,
            available,
        });
    }
    Ok(())
}

/// Refuses a binary value whose length is not a whole number of its VR's elements.
fn aligned(at: usize, tag: Tag, vr: VR, declared: u32) -> Result<(), Refusal> {
    let size = match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::UL | VR::SL | VR::FL | VR::OF | VR::OL | VR::AT => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    };
    if !declared.is_multiple_of(size) {
        return Err(Refusal::Misaligned {
            at,
            tag,
            vr,
            declared,
            size,
        });
    }
    Ok(())
}

/// Attributes whose VR is "US or SS" by Pixel Representation: the parser's stateful decoder
/// rewrites their VR after reading the header.
fn is_us_or_ss(tag: Tag) -> bool {
    StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| matches!(e.vr, VirtualVr::Xs))
}
