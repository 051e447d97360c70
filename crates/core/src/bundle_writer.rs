//! Writes Bundle JSON as text, embedding stored resource bodies verbatim.
//!
//! Stored bodies are already canonical compact JSON, so a search or history
//! page is assembled without parsing and re-serialising every resource.

use serde_json::Value;

/// `response` parts of a Bundle entry.
pub struct EntryResponse<'a> {
    pub status: &'a str,
    pub location: Option<&'a str>,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    /// Raw JSON of an `OperationOutcome`.
    pub outcome: Option<&'a str>,
}

/// A Bundle under construction. Entries are appended in order.
pub struct BundleWriter {
    head: String,
    entries: String,
    count: usize,
}

fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl BundleWriter {
    pub fn new(bundle_type: &str, id: &str, timestamp: &str) -> Self {
        let head = format!(
            r#"{{"resourceType":"Bundle","id":{},"meta":{{"lastUpdated":{}}},"type":{},"timestamp":{}"#,
            quote(id),
            quote(timestamp),
            quote(bundle_type),
            quote(timestamp)
        );
        BundleWriter {
            head,
            entries: String::new(),
            count: 0,
        }
    }

    pub fn total(&mut self, total: u64) {
        self.head.push_str(&format!(r#","total":{total}"#));
    }

    /// `link` with (relation, url) pairs; call at most once, before `finish`.
    pub fn links(&mut self, links: &[(&str, &str)]) {
        if links.is_empty() {
            return;
        }
        self.head.push_str(r#","link":["#);
        for (i, (rel, url)) in links.iter().enumerate() {
            if i > 0 {
                self.head.push(',');
            }
            self.head.push_str(&format!(
                r#"{{"relation":{},"url":{}}}"#,
                quote(rel),
                quote(url)
            ));
        }
        self.head.push(']');
    }

    /// Appends an entry. `resource` is raw JSON of a resource.
    pub fn entry(
        &mut self,
        full_url: Option<&str>,
        resource: Option<&str>,
        search_mode: Option<&str>,
        request: Option<(&str, &str)>,
        response: Option<&EntryResponse<'_>>,
    ) {
        if self.count > 0 {
            self.entries.push(',');
        }
        self.count += 1;
        let mut fields: Vec<String> = Vec::with_capacity(5);
        if let Some(u) = full_url {
            fields.push(format!(r#""fullUrl":{}"#, quote(u)));
        }
        if let Some(r) = resource {
            fields.push(format!(r#""resource":{r}"#));
        }
        if let Some(mode) = search_mode {
            fields.push(format!(r#""search":{{"mode":{}}}"#, quote(mode)));
        }
        if let Some((method, url)) = request {
            fields.push(format!(
                r#""request":{{"method":{},"url":{}}}"#,
                quote(method),
                quote(url)
            ));
        }
        if let Some(resp) = response {
            let mut parts = vec![format!(r#""status":{}"#, quote(resp.status))];
            if let Some(l) = resp.location {
                parts.push(format!(r#""location":{}"#, quote(l)));
            }
            if let Some(e) = resp.etag {
                parts.push(format!(r#""etag":{}"#, quote(e)));
            }
            if let Some(m) = resp.last_modified {
                parts.push(format!(r#""lastModified":{}"#, quote(m)));
            }
            if let Some(o) = resp.outcome {
                parts.push(format!(r#""outcome":{o}"#));
            }
            fields.push(format!(r#""response":{{{}}}"#, parts.join(",")));
        }
        self.entries.push('{');
        self.entries.push_str(&fields.join(","));
        self.entries.push('}');
    }

    pub fn finish(mut self) -> String {
        if self.count > 0 {
            self.head.push_str(r#","entry":["#);
            self.head.push_str(&self.entries);
            self.head.push(']');
        }
        self.head.push('}');
        self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut b = BundleWriter::new("searchset", "b1", "2020-01-01T00:00:00Z");
        b.links(&[("self", "http://x/fhir/Patient?a=\"q\"")]);
        b.entry(
            Some("http://x/fhir/Patient/1"),
            Some(r#"{"resourceType":"Patient","id":"1"}"#),
            Some("match"),
            None,
            None,
        );
        b.entry(
            None,
            None,
            None,
            Some(("DELETE", "Patient/2")),
            Some(&EntryResponse {
                status: "204 No Content",
                location: None,
                etag: None,
                last_modified: None,
                outcome: None,
            }),
        );
        let v: Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(v["entry"][0]["resource"]["id"], "1");
        assert_eq!(v["entry"][1]["response"]["status"], "204 No Content");
        assert_eq!(v["link"][0]["url"], "http://x/fhir/Patient?a=\"q\"");
        let empty = BundleWriter::new("history", "b2", "t").finish();
        assert!(
            serde_json::from_str::<Value>(&empty)
                .unwrap()
                .get("entry")
                .is_none()
        );
    }
}
