//! `/docs` is served from the binary: its page names no other host, and every asset it loads
//! answers from orderflow itself.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

/// The values of `attribute="…"` in an HTML page.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let marker = format!("{attribute}=\"");
    html.split(marker.as_str()).skip(1).filter_map(|rest| rest.split('"').next()).collect()
}

/// Every `http://` or `https://` URL in `text`.
fn absolute_urls(text: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    for scheme in ["http://", "https://"] {
        for (at, _) in text.match_indices(scheme) {
            let url = &text[at..];
            urls.push(&url[..url.find(['"', '\'', ' ', ')', '<']).unwrap_or(url.len())]);
        }
    }
    urls
}

#[tokio::test]
async fn the_docs_page_and_its_start_script_name_no_other_host_and_its_assets_are_served() {
    let app = spawn_app().await;

    let page = app.client.get(app.url("/docs/")).send().await.unwrap().text().await.unwrap();
    let initializer =
        app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();

    assert!(absolute_urls(&page).is_empty(), "the page names hosts: {:?}", absolute_urls(&page));
    assert!(absolute_urls(&initializer).is_empty(), "the script names hosts: {:?}", absolute_urls(&initializer));
    assert!(initializer.contains(r#""validatorUrl": "none""#), "the validator badge calls swagger.io: {initializer}");
    let assets: Vec<&str> = attribute_values(&page, "src").into_iter().chain(attribute_values(&page, "href")).collect();
    assert!(assets.len() >= 4, "{page}");
    for asset in assets {
        let response =
            app.client.get(app.url(&format!("/docs/{}", asset.trim_start_matches("./")))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset} is empty");
    }
}
