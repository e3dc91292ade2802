//! The QR code of an activation code, as SVG text or PNG bytes.
//!
//! Error correction level M (15 % of the code words can be restored): the QR code is scanned
//! from a screen or a printout by a phone camera, where L is too fragile for a smudged print
//! or a glossy screen and Q or H only make the code denser for no gain. The quiet zone, the
//! light border a scanner needs to find the code, is the 4 modules ISO/IEC 18004 asks for;
//! both renderings include it, so a page or e-mail template must not crop it.
//!
//! `qrcode` builds the module matrix and the SVG. The PNG is written from the same matrix with
//! `png`, one bit per pixel: black and white is all a QR code is, and the file stays small
//! enough to inline in an e-mail.

use std::fmt;

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

use super::ActivationCode;

/// Light modules of quiet zone on each side (ISO/IEC 18004 for QR codes other than Micro QR).
const QUIET_ZONE: u32 = 4;

/// Largest number of pixels per module. A version 40 code, the largest, is 177 modules; with
/// the quiet zone and this scale it is 5 920 pixels across, more than any print or screen
/// needs, and the limit keeps a wrong argument from allocating without bound.
const MAX_SCALE: u32 = 32;

/// The QR code of an activation code, ready to render.
///
/// `Debug` shows the size only: the modules encode the activation code, which is secret for
/// the customer.
pub struct ActivationQr {
    code: QrCode,
}

/// Why a QR code could not be made or rendered. The message never contains the activation
/// code.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the eSIM activation code is too long for a QR code")]
    Encode,
    #[error("the QR code scale is 1 to 32 pixels per module")]
    Scale,
    #[error("the QR code could not be written as PNG")]
    Png(#[source] png::EncodingError),
}

impl QrError {
    /// The stable machine-readable code (part of the API contract).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Encode => "esim_qr_encode",
            Self::Scale => "esim_qr_scale",
            Self::Png(_) => "esim_qr_png",
        }
    }
}

impl ActivationQr {
    /// The QR code of [`ActivationCode::to_lpa_string`] at error correction level M, in the
    /// smallest version that holds it.
    ///
    /// # Errors
    /// [`QrError::Encode`] when the text does not fit in a QR code; it always fits without an
    /// SM-DP+ OID (the address and the matching ID are at most some 500 characters, a
    /// version 40 code at level M holds 2 331 bytes), so only an absurdly long OID can cause it.
    pub fn new(code: &ActivationCode) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(code.to_lpa_string(), EcLevel::M)
            .map_err(|_| QrError::Encode)?;
        Ok(Self { code })
    }

    /// Modules across the code, without the quiet zone (21 for version 1, 4 more a version).
    pub fn modules(&self) -> u32 {
        u32::try_from(self.code.width()).expect("a QR code is at most 177 modules across")
    }

    /// Pixels across a rendering at `scale` pixels per module, quiet zone included:
    /// `(modules + 8) × scale`.
    pub fn side(&self, scale: u32) -> u32 {
        (self.modules() + 2 * QUIET_ZONE) * scale
    }

    /// An SVG document, black on white, `side(scale)` user units square (`width` and `height`
    /// in pixels, with the same `viewBox`, so it can be scaled further by the page).
    ///
    /// # Errors
    /// [`QrError::Scale`] unless `scale` is 1 to 32.
    pub fn to_svg(&self, scale: u32) -> Result<String, QrError> {
        check_scale(scale)?;
        Ok(self
            .code
            .render::<svg::Color<'_>>()
            .quiet_zone(true)
            .module_dimensions(scale, scale)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build())
    }

    /// A PNG image, 1-bit greyscale (black on white), `side(scale)` pixels square.
    ///
    /// # Errors
    /// [`QrError::Scale`] unless `scale` is 1 to 32; [`QrError::Png`] if the encoder fails
    /// (it writes to memory, so it should not).
    pub fn to_png(&self, scale: u32) -> Result<Vec<u8>, QrError> {
        check_scale(scale)?;
        let side = self.side(scale);
        let rows = self.pixel_rows(scale);
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let mut writer = encoder.write_header().map_err(QrError::Png)?;
        writer.write_image_data(&rows).map_err(QrError::Png)?;
        writer.finish().map_err(QrError::Png)?;
        Ok(bytes)
    }

    /// The image as PNG scan lines of 1-bit pixels, most significant bit first, 0 for black
    /// and 1 for white, each line padded to whole bytes.
    fn pixel_rows(&self, scale: u32) -> Vec<u8> {
        let modules = self.code.width();
        let quiet = QUIET_ZONE as usize;
        let scale = scale as usize;
        let side = (modules + 2 * quiet) * scale;
        let line_len = side.div_ceil(8);
        let colors = self.code.to_colors();

        let mut image = Vec::with_capacity(line_len * side);
        let light_line = vec![0xff; line_len];
        for _ in 0..quiet * scale {
            image.extend_from_slice(&light_line);
        }
        for row in colors.chunks(modules) {
            let mut line = vec![0xff; line_len];
            for (column, color) in row.iter().enumerate() {
                if *color == Color::Dark {
                    let first = (quiet + column) * scale;
                    for x in first..first + scale {
                        line[x / 8] &= !(0x80 >> (x % 8));
                    }
                }
            }
            for _ in 0..scale {
                image.extend_from_slice(&line);
            }
        }
        for _ in 0..quiet * scale {
            image.extend_from_slice(&light_line);
        }
        image
    }
}

fn check_scale(scale: u32) -> Result<(), QrError> {
    if (1..=MAX_SCALE).contains(&scale) {
        Ok(())
    } else {
        Err(QrError::Scale)
    }
}

impl fmt::Debug for ActivationQr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationQr")
            .field("modules", &self.modules())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    fn activation_code() -> ActivationCode {
        ActivationCode::new("smdp.example.com", "QR-G-5C-1LS-1W1Z9P7", true).unwrap()
    }

    /// The PNG decoded to 8-bit grey pixels: (side across, side down, pixels row by row).
    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        pixels.truncate(info.buffer_size());
        (info.width, info.height, pixels)
    }

    /// Reads the QR code in a grey image back with `rqrr`, an independent decoder.
    fn read_qr(width: u32, height: u32, pixels: &[u8]) -> (rqrr::MetaData, String) {
        let (width, height) = (width as usize, height as usize);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
            pixels[y * width + x]
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the image");
        grids[0].decode().unwrap()
    }

    #[test]
    fn the_png_is_a_square_of_the_modules_and_quiet_zone_and_reads_back() {
        let code = activation_code();
        let qr = ActivationQr::new(&code).unwrap();
        // 45 characters (some in byte mode: the address is lower case) need version 3 at
        // level M: 29 modules.
        assert_eq!(qr.modules(), 29);
        for scale in [1, 4, 7] {
            let png = qr.to_png(scale).unwrap();
            assert_eq!(png[..8], PNG_SIGNATURE);
            let (width, height, pixels) = decode_png(&png);
            assert_eq!(width, (qr.modules() + 8) * scale);
            assert_eq!(height, width);
            assert_eq!(qr.side(scale), width);
            // The quiet zone is white all round.
            let side = width as usize;
            let quiet = 4 * scale as usize;
            for i in 0..side {
                for j in 0..quiet {
                    for (x, y) in [(i, j), (j, i), (i, side - 1 - j), (side - 1 - j, i)] {
                        assert_eq!(pixels[y * side + x], 0xff, "({x}, {y}) at scale {scale}");
                    }
                }
            }
            // The first module of the finder pattern is black.
            assert_eq!(pixels[quiet * side + quiet], 0);
            if scale > 1 {
                let (meta, text) = read_qr(width, height, &pixels);
                assert_eq!(text, "LPA:1$smdp.example.com$QR-G-5C-1LS-1W1Z9P7$$1");
                assert_eq!(text, code.to_lpa_string());
                // Format bits 00 are level M.
                assert_eq!(meta.ecc_level, 0);
            }
        }
    }

    #[test]
    fn a_long_code_reads_back_too() {
        let code = ActivationCode::new(
            "rsp-production-eu-west.smdp-plus.example-operator.com",
            &"7K2M-9QXA-".repeat(20),
            false,
        )
        .unwrap()
        .with_smdp_oid("1.3.6.1.4.1.31746.1.500.200.101")
        .unwrap();
        let qr = ActivationQr::new(&code).unwrap();
        let (width, height, pixels) = decode_png(&qr.to_png(3).unwrap());
        assert_eq!(width, (qr.modules() + 8) * 3);
        assert_eq!(read_qr(width, height, &pixels).1, code.to_lpa_string());
    }

    #[test]
    fn the_svg_has_the_size_of_the_modules_and_quiet_zone() {
        let qr = ActivationQr::new(&activation_code()).unwrap();
        let svg = qr.to_svg(10).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        let side = (qr.modules() + 8) * 10;
        assert_eq!(side, 370);
        assert!(svg.contains(&format!(r#"width="{side}" height="{side}""#)));
        assert!(svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)));
        // The top-left module is dark and drawn just inside the quiet zone.
        assert!(svg.contains("M40 40h10v10H40V40"));
        assert!(
            !svg.contains("M30 30h10"),
            "nothing is drawn in the quiet zone"
        );
    }

    #[test]
    fn a_scale_out_of_range_is_refused() {
        let qr = ActivationQr::new(&activation_code()).unwrap();
        for scale in [0, 33, u32::MAX] {
            assert_eq!(qr.to_png(scale).unwrap_err().code(), "esim_qr_scale");
            assert_eq!(qr.to_svg(scale).unwrap_err().code(), "esim_qr_scale");
        }
        assert!(qr.to_png(32).is_ok());
    }

    #[test]
    fn debug_shows_the_size_only() {
        let qr = ActivationQr::new(&activation_code()).unwrap();
        assert_eq!(format!("{qr:?}"), "ActivationQr { modules: 29, .. }");
    }
}
