//! Step 0 on small synthetic objects: rescale, window, VOI LUT Sequence, Modality LUT Sequence,
//! min–max, MONOCHROME1, signed samples and masking of bits above Bits Stored.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};
use radroute_decode::{decode_display_with_source, DecodeError, VoiSource};

fn object(
    pi: &str,
    signed: bool,
    bits_stored: u16,
    samples: &[u16],
    extra: Vec<DataElement<InMemDicomObject>>,
) -> FileDicomObject<InMemDicomObject> {
    let mut o = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.1"),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3"),
        ),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(pi),
        ),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(1u16)),
        DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(samples.len() as u16),
        ),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits_stored)),
        DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(bits_stored - 1),
        ),
        DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(u16::from(signed)),
        ),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(samples.iter().copied().collect()),
        ),
    ]);
    for e in extra {
        o.put(e);
    }
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax("1.2.840.10008.1.2.1")
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.1")
        .media_storage_sop_instance_uid("1.2.3")
        .build()
        .expect("meta");
    o.with_exact_meta(meta)
}

fn ds(tag: Tag, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::DS, PrimitiveValue::from(v))
}

fn lut_seq(tag: Tag, first: u16, bits: u16, data: &[u16]) -> DataElement<InMemDicomObject> {
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::LUT_DESCRIPTOR,
            VR::US,
            PrimitiveValue::U16([data.len() as u16, first, bits].into_iter().collect()),
        ),
        DataElement::new(
            tags::LUT_DATA,
            VR::OW,
            PrimitiveValue::U16(data.iter().copied().collect()),
        ),
    ]);
    DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![item]))
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn rescale_then_window() {
    // stored 0..300, slope 2, intercept -100 -> -100, 100, 500; window c=100 w=401 -> 0, 0.5, 1
    let o = object(
        "MONOCHROME2",
        false,
        12,
        &[0, 100, 300],
        vec![
            ds(tags::RESCALE_SLOPE, "2"),
            ds(tags::RESCALE_INTERCEPT, "-100"),
            ds(tags::WINDOW_CENTER, "100.5\\40"),
            ds(tags::WINDOW_WIDTH, "401\\80"),
        ],
    );
    let (img, src) = decode_display_with_source(&o).expect("decodes");
    assert_eq!(src, VoiSource::Window);
    assert!(close(&img.data, &[0.0, 0.5, 1.0]), "{:?}", img.data);
}

#[test]
fn monochrome1_inverts_after_min_max() {
    let o = object(
        "MONOCHROME1",
        false,
        10,
        &[0, 512, 1023, 1023 | 0xF000],
        vec![],
    );
    let (img, src) = decode_display_with_source(&o).expect("decodes");
    assert_eq!(src, VoiSource::MinMax);
    // bits above Bits Stored (0xF000) are masked off, so the last sample equals the third
    assert!(
        close(&img.data, &[1.0, 1.0 - 512.0 / 1023.0, 0.0, 0.0]),
        "{:?}",
        img.data
    );
}

#[test]
fn signed_samples_are_sign_extended_from_bits_stored() {
    // 12-bit two's complement: 0x0FFF is -1, 0x0800 is -2048, 0x07FF is 2047
    let o = object(
        "MONOCHROME2",
        true,
        12,
        &[0x0800, 0x0FFF, 0x07FF],
        vec![ds(tags::WINDOW_CENTER, "0"), ds(tags::WINDOW_WIDTH, "4096")],
    );
    let (img, _) = decode_display_with_source(&o).expect("decodes");
    // linear window c=0 w=4096: x=-2048 -> 0, x=-1 -> ~0.4998, x=2047 -> ~1
    assert!(
        img.data[0] < 1e-3 && (img.data[1] - 0.49988).abs() < 1e-3 && img.data[2] > 0.999,
        "{:?}",
        img.data
    );
}

#[test]
fn voi_lut_sequence_when_no_window() {
    // LUT maps 10->0, 11->128, 12->255 (8-bit); inputs below/above clamp
    let o = object(
        "MONOCHROME2",
        false,
        8,
        &[5, 11, 12, 40],
        vec![lut_seq(tags::VOILUT_SEQUENCE, 10, 8, &[0, 128, 255])],
    );
    let (img, src) = decode_display_with_source(&o).expect("decodes");
    assert_eq!(src, VoiSource::VoiLutSequence);
    assert!(
        close(&img.data, &[0.0, 128.0 / 255.0, 1.0, 1.0]),
        "{:?}",
        img.data
    );
}

#[test]
fn modality_lut_sequence_when_no_rescale() {
    // modality LUT 0->100, 1->200, 2->400 then min-max
    let o = object(
        "MONOCHROME2",
        false,
        8,
        &[0, 1, 2],
        vec![lut_seq(
            tags::MODALITY_LUT_SEQUENCE,
            0,
            16,
            &[100, 200, 400],
        )],
    );
    let (img, _) = decode_display_with_source(&o).expect("decodes");
    assert!(close(&img.data, &[0.0, 1.0 / 3.0, 1.0]), "{:?}", img.data);
}

#[test]
fn missing_and_bad_attributes_are_typed() {
    let mut o = object("MONOCHROME2", false, 8, &[0, 1], vec![]);
    o.remove_element(tags::ROWS);
    assert!(matches!(
        decode_display_with_source(&o),
        Err(DecodeError::MissingAttribute { name: "Rows", .. })
    ));
    let o = object("PALETTE COLOR", false, 8, &[0, 1], vec![]);
    assert!(matches!(
        decode_display_with_source(&o),
        Err(DecodeError::UnsupportedPixelFormat { .. })
    ));
    let o = object(
        "MONOCHROME2",
        false,
        8,
        &[0, 1],
        vec![ds(tags::RESCALE_SLOPE, "abc")],
    );
    assert!(matches!(
        decode_display_with_source(&o),
        Err(DecodeError::InvalidAttribute {
            name: "RescaleSlope",
            ..
        })
    ));
}
