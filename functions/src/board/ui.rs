//! The board's UI as served: apalis-board's embedded WASM app (`ServeUI`), with its queues page
//! fixed on the way out.
//!
//! Upstream behaviour worked around (docs/upstream/apalis-board-queues-row-count.md):
//! apalis-board-web 1.0.0's queues page tells its table there is exactly one queue
//! (`QueueProvider::row_count` returns `Some(1)` in `pages/queues/provider.rs`), so the table
//! (leptos-struct-table 0.19.1) shows the first queue `GET /api/v1/queues` returns and drops the
//! rest, whatever their statistics. No data we serve can change that count: it is compiled into
//! the WASM module. So the module is served patched: the four places where the compiled table
//! takes that count read 63 instead of 1. The table then asks for its first page of up to 100
//! rows, gets fewer, and takes their number as the real count (`set_known_row_count` in
//! `table_content.rs`), which is how it already treats every other short page. 63 is the largest
//! count with the same one-byte encoding, so nothing else in the module moves; a board with more
//! than 63 queues would show 63 of them.
//!
//! The patch is checked byte for byte before it is applied: assets from any other apalis-board
//! build are served unchanged (with a warning), and a test fails on them.

use std::{path::Path, sync::LazyLock};

use apalis_board::axum::ui::ServeUI;
use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha384};
use tower::ServiceExt;

/// The page every path of the app loads.
const INDEX: &str = "index.html";
/// The WASM module of apalis-board-web 1.0.0, as `index.html` names it.
const WASM: &str = "apalis-board-web-5f43ae260a03616d_bg.wasm";
/// Its size, the first check that it is the module the patch was made for.
const WASM_LEN: usize = 2_266_968;
/// Where the patched module is served. Not under the original name: `ServeUI` serves the module
/// as immutable for a year, so a browser that loaded the original would keep it.
const PATCHED_WASM: &str = "apalis-board-web-5f43ae260a03616d_bg.orderflow-queues.wasm";

/// One place the compiled queues table takes its row count: the bytes found at `at` in the
/// module (a few instructions, disassembled with `wasm-objdump -d`), and the offset in them of
/// the one-byte immediate of the `i32.const 1` that is the count.
struct Site {
    at: usize,
    code: &'static [u8],
    count: usize,
}

/// The four uses of the count in the table's `load_row_count` task for the queues page (function
/// 577 of the module): `set_row_count.set(Some(1))`, `loaded_rows.resize(1)`,
/// `on_row_count.run(1)` and `display_strategy.set_row_count(1)`. The same task for the workers
/// table (function 310) passes a fetched count at each of these places.
const SITES: [Site; 4] = [
    // i32.const 1 (Some); i32.const 1; call 699
    Site { at: 0x000c_4a0a, code: &[0x41, 0x01, 0x41, 0x01, 0x10, 0xbb, 0x05], count: 3 },
    // i32.const 1; local.get 6; call 1105
    Site { at: 0x000c_4a8e, code: &[0x41, 0x01, 0x20, 0x06, 0x10, 0xd1, 0x08], count: 1 },
    // i32.const 1; local.get 2; i32.load offset=20; call_indirect
    Site { at: 0x000c_4b37, code: &[0x41, 0x01, 0x20, 0x02, 0x28, 0x02, 0x14, 0x11, 0x00, 0x00], count: 1 },
    // i32.const 1; call 3264
    Site { at: 0x000c_4b43, code: &[0x41, 0x01, 0x10, 0xc0, 0x19], count: 1 },
];

/// The count the patched table starts from (`i32.const 63`).
const PATCHED_COUNT: u8 = 0x3f;

/// The patched module, and the page that loads it.
struct PatchedUi {
    index: Bytes,
    wasm: Bytes,
}

/// Built on first use; `None` when the embedded assets are not those the patch was made for.
static PATCHED: LazyLock<Option<PatchedUi>> = LazyLock::new(|| {
    let patched = patch();
    if patched.is_none() {
        tracing::warn!(
            "apalis-board's UI is not the build the queues-page patch was made for; serving it unchanged, \
             so /queues may list only the first queue (docs/upstream/apalis-board-queues-row-count.md)"
        );
    }
    patched
});

/// The patched module and an `index.html` that loads it (with its integrity hash), if the
/// embedded assets are the expected ones.
fn patch() -> Option<PatchedUi> {
    let index = std::str::from_utf8(ServeUI::get_file(INDEX)?.contents()).ok()?;
    let mut wasm = ServeUI::get_file(WASM)?.contents().to_vec();
    let expected = |site: &Site| wasm.get(site.at..site.at + site.code.len()) == Some(site.code);
    if wasm.len() != WASM_LEN || !SITES.iter().all(expected) || !index.contains(&format!("'/{WASM}'")) {
        return None;
    }
    let original = integrity(&wasm);
    for site in &SITES {
        wasm[site.at + site.count] = PATCHED_COUNT;
    }
    let index = index.replace(&format!("/{WASM}"), &format!("/{PATCHED_WASM}")).replace(&original, &integrity(&wasm));
    Some(PatchedUi { index: Bytes::from(index), wasm: Bytes::from(wasm) })
}

/// A subresource integrity value, as `index.html` carries for each asset.
fn integrity(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

/// Serves the UI: the patched module and page when the patch applies, anything else as
/// `ServeUI` does (which answers unknown paths with `index.html`, for the app's own routes).
pub async fn serve(request: Request) -> Response {
    if let Some(patched) = PATCHED.as_ref() {
        let path = request.uri().path().trim_start_matches('/');
        if path == PATCHED_WASM {
            return asset(PATCHED_WASM, patched.wasm.clone());
        }
        if ServeUI::get_file(path).is_none_or(|file| file.path() == Path::new(INDEX)) {
            return asset(INDEX, patched.index.clone());
        }
    }
    match ServeUI::new().oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// A served file, with the content type and caching `ServeUI` gives its name.
fn asset(name: &str, body: Bytes) -> Response {
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ServeUI::content_type(name)));
    if let Some(cache) = ServeUI::cache_control(name) {
        headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static(cache));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_ui_is_the_build_the_queues_patch_was_made_for() {
        let patched = patch().expect("apalis-board's UI changed: check the queues page and redo or drop the patch");
        let original = ServeUI::get_file(WASM).unwrap().contents();

        let changed: Vec<usize> = (0..original.len()).filter(|&i| original[i] != patched.wasm[i]).collect();

        assert_eq!(changed, SITES.map(|s| s.at + s.count));
        let index = std::str::from_utf8(&patched.index).unwrap();
        assert_eq!(index.matches(PATCHED_WASM).count(), 2, "the loader and the preload: {index}");
        assert!(!index.contains(&format!("/{WASM}")), "{index}");
        assert!(index.contains(&integrity(&patched.wasm)), "{index}");
    }
}
