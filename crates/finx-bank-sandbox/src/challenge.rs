//! The embedded bank's SCA methods and their challenges: a pushTAN text, a chipTAN flicker
//! code, and a photoTAN image (a real PNG, drawn here).

use finx_domain::sca::{Challenge, ScaMethod, ScaMethodKind};
use sha2::{Digest, Sha256};

use crate::SANDBOX_TAN;
use crate::session::Method;

/// The methods as the bank offers them.
pub(crate) fn methods() -> Vec<ScaMethod> {
    Method::ALL
        .into_iter()
        .map(|m| {
            let (name, kind) = match m {
                Method::Push => ("pushTAN", ScaMethodKind::Push),
                Method::Chip => ("chipTAN optisch", ScaMethodKind::Chip),
                Method::Photo => ("photoTAN", ScaMethodKind::Photo),
            };
            ScaMethod {
                id: m.id().to_owned(),
                name: name.to_owned(),
                kind,
            }
        })
        .collect()
}

/// The challenge of `method` for the consent `consent_id`.
pub(crate) fn challenge(method: Method, consent_id: &str) -> Challenge {
    let sandbox = format!("(Sandbox: TAN {SANDBOX_TAN})");
    match method {
        Method::Push => Challenge {
            method: "pushTAN".into(),
            prompt: Some(format!(
                "Die TAN wurde an Ihre Banking-App gesendet. {sandbox}"
            )),
            image_png: None,
            flicker: None,
            max_length: Some(6),
        },
        Method::Chip => Challenge {
            method: "chipTAN optisch".into(),
            prompt: Some(format!(
                "Stecken Sie Ihre Karte in den TAN-Generator, halten Sie ihn an den \
                 Flickercode und geben Sie die angezeigte TAN ein. {sandbox}"
            )),
            image_png: None,
            flicker: Some(flicker_code(consent_id)),
            max_length: Some(6),
        },
        Method::Photo => Challenge {
            method: "photoTAN".into(),
            prompt: Some(format!(
                "Scannen Sie die Grafik mit Ihrer photoTAN-App und geben Sie die TAN ein. \
                 {sandbox}"
            )),
            image_png: Some(photo_png(consent_id)),
            flicker: None,
            max_length: Some(6),
        },
    }
}

/// HHD 1.4 style flicker data: a start code and the consent's reference, as hex digits
/// with the length prefix and the control byte a reader expects. The sandbox's readers are
/// people: any reader "shows" [`SANDBOX_TAN`].
fn flicker_code(consent_id: &str) -> String {
    let digest = Sha256::digest(consent_id.as_bytes());
    let reference: String = digest.iter().take(4).map(|b| format!("{b:02}")).collect();
    let start = format!("8{:01X}{}", reference.len() % 16, reference);
    let body = format!("{:02X}{start}", start.len() / 2);
    let luhn: u32 = body.chars().filter_map(|c| c.to_digit(16)).sum::<u32>() % 10;
    format!("{body}{luhn:X}")
}

/// Modules per side of the photoTAN mosaic.
const MODULES: u32 = 25;
/// Pixels per module.
const SCALE: u32 = 8;

/// A photoTAN mosaic for the consent: a 25 × 25 grid with three finder squares, drawn as
/// a 200 × 200 grey-scale PNG.
fn photo_png(consent_id: &str) -> Vec<u8> {
    let side = MODULES * SCALE;
    let mut seed = Sha256::digest(consent_id.as_bytes()).to_vec();
    let mut bits = Vec::with_capacity((MODULES * MODULES) as usize);
    while bits.len() < (MODULES * MODULES) as usize {
        seed = Sha256::digest(&seed).to_vec();
        bits.extend(
            seed.iter()
                .flat_map(|b| (0..8).map(move |i| b >> i & 1 == 1)),
        );
    }
    let finder = |x: u32, y: u32| -> Option<bool> {
        for (fx, fy) in [(0, 0), (MODULES - 7, 0), (0, MODULES - 7)] {
            if (fx..fx + 7).contains(&x) && (fy..fy + 7).contains(&y) {
                let (dx, dy) = (x - fx, y - fy);
                let ring = dx.min(dy).min(6 - dx).min(6 - dy);
                return Some(ring != 1);
            }
        }
        None
    };
    let mut pixels = Vec::with_capacity((side * side) as usize);
    for py in 0..side {
        for px in 0..side {
            let (x, y) = (px / SCALE, py / SCALE);
            let dark = finder(x, y).unwrap_or_else(|| bits[(y * MODULES + x) as usize]);
            pixels.push(if dark { 0 } else { 255 });
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels));
    // Writing to a Vec cannot fail; an empty image would be refused by the domain check.
    if written.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_challenge_is_a_png_of_200_pixels_square() {
        let png = photo_png("consent-1");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().expect("a PNG");
        assert_eq!(
            (reader.info().width, reader.info().height),
            (SCALE * MODULES, SCALE * MODULES)
        );
        assert_ne!(png, photo_png("consent-2"), "each consent draws its own");
    }

    #[test]
    fn flicker_codes_are_hex_and_differ_per_consent() {
        let a = flicker_code("a");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, flicker_code("b"));
    }
}
