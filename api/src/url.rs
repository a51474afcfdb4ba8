//! Service addresses and route URLs: how a base URL given on the command line is checked, and
//! how a route template of [`crate::catalog::routes`], [`crate::frontend::routes`] or
//! [`crate::order::routes`] becomes the URL a client calls. A leaf module: flags, the cluster's
//! address list and the typed clients all build URLs the same way through it.

/// The URL of a route: `base` joined with the route `template` (one of the route constants in
/// [`crate::catalog::routes`], [`crate::frontend::routes`], [`crate::order::routes`]), each
/// `{param}` segment replaced by the next of `params`, percent-encoded as one segment (toy
/// names have spaces, apostrophes, even slashes). Routers use the same templates, so caller and
/// server cannot disagree on a path.
pub fn route_url(base: &reqwest::Url, template: &str, params: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    let mut params = params.iter();
    // Only URLs that cannot have a path (`mailto:`) refuse; every base here is http://.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            if segment.starts_with('{') && segment.ends_with('}') {
                path.push(params.next().copied().unwrap_or_default());
            } else {
                path.push(segment);
            }
        }
    }
    url
}

/// Parses a service's base URL (`http://host:port`, optionally with a path prefix), or says
/// why it is not one.
pub fn parse_base_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|err| {
        format!("{text:?} is not a URL ({err}); expected e.g. http://127.0.0.1:8100")
    })?;
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err(format!("{text:?} must be an http:// URL with a host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_are_filled_one_percent_encoded_segment_per_param() {
        let base = reqwest::Url::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            route_url(&base, "/products/{name}", &["Rubik's Cube"]).as_str(),
            "http://127.0.0.1:8000/products/Rubik's%20Cube"
        );
        assert_eq!(
            route_url(&base, "/products/{name}", &["a/b?c#d%"]).as_str(),
            "http://127.0.0.1:8000/products/a%2Fb%3Fc%23d%25"
        );
        assert_eq!(
            route_url(&base, "/products", &[]).as_str(),
            "http://127.0.0.1:8000/products"
        );
        let prefixed = reqwest::Url::parse("http://h:1/store/").unwrap();
        assert_eq!(
            route_url(&prefixed, "/orders/{number}", &["7"]).as_str(),
            "http://h:1/store/orders/7"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("http://catalog.local:8100").is_ok());
    }
}
