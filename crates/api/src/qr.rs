//! Ticket tokens drawn as QR codes, for phones and printouts. Rendering is CPU work: callers
//! run it off the async worker threads (`spawn_blocking`).
//!
//! Codes use error correction level M (15 % of the symbol may be damaged or covered, the usual
//! compromise for screens and paper) and a quiet zone of four modules, as ISO/IEC 18004 asks.

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in PNG output: a ticket token (version ~12, 65 modules) becomes a
/// 584-pixel square, sharp on phones and large enough to print.
pub const PNG_MODULE_PIXELS: u32 = 8;

/// Modules of light margin around the symbol.
const QUIET_ZONE: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the data does not fit in a QR code: {0}")]
    TooLong(#[from] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

fn encode(data: &str) -> Result<QrCode, QrError> {
    Ok(QrCode::with_error_correction_level(
        data.as_bytes(),
        EcLevel::M,
    )?)
}

/// The QR code of `data` as a standalone SVG document, scalable to any size.
pub fn svg(data: &str) -> Result<String, QrError> {
    let code = encode(data)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(PNG_MODULE_PIXELS, PNG_MODULE_PIXELS)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// The QR code of `data` as an 8-bit greyscale PNG of [`PNG_MODULE_PIXELS`] per module.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let code = encode(data)?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_MODULE_PIXELS;
    let mut pixels = vec![0xffu8; (side * side) as usize];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % modules, i as u32 / modules);
        let (x0, y0) = (
            (mx + QUIET_ZONE) * PNG_MODULE_PIXELS,
            (my + QUIET_ZONE) * PNG_MODULE_PIXELS,
        );
        for y in y0..y0 + PNG_MODULE_PIXELS {
            let row = (y * side) as usize;
            pixels[row + x0 as usize..row + (x0 + PNG_MODULE_PIXELS) as usize].fill(0);
        }
    }
    let mut out = Vec::with_capacity(pixels.len() / 16);
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the single QR code in a greyscale image.
    fn read(width: usize, height: usize, luma: &[u8]) -> String {
        let mut img =
            rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one code in the image");
        grids[0].decode().expect("decodable").1
    }

    #[test]
    fn png_round_trips() {
        let data = "eyJhbGciOiJFZERTQSJ9.a-ticket-token.signature_-0123456789";
        let bytes = png(data).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.width, info.height);
        assert_eq!(info.width % PNG_MODULE_PIXELS, 0);
        let luma = &buf[..info.buffer_size()];
        assert_eq!(read(info.width as usize, info.height as usize, luma), data);
    }

    #[test]
    fn svg_is_a_document() {
        let s = svg("hello").unwrap();
        assert!(s.starts_with("<?xml"), "{s}");
        assert!(s.contains("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn too_much_data_is_an_error() {
        assert!(matches!(svg(&"x".repeat(5000)), Err(QrError::TooLong(_))));
    }
}
