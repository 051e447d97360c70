//! A minimal XML reader, just enough for the official FHIRPath test suite
//! file (elements, attributes, text, comments, CDATA, the five predefined
//! entities and numeric character references). Written here rather than
//! pulling in an XML crate as a dev-dependency: the input is a single,
//! well-formed, trusted file.

/// An XML element.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Content>,
}

/// Element content.
#[derive(Debug)]
pub enum Content {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Content::Element(e) => Some(e),
            Content::Text(_) => None,
        })
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.children {
            match c {
                Content::Text(t) => out.push_str(t),
                Content::Element(e) => out.push_str(&e.text()),
            }
        }
        out
    }
}

fn decode_entities(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(';').expect("unterminated entity");
        let entity = &after[1..end];
        let ch = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ if entity.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&entity[2..], 16).unwrap()).unwrap()
            }
            _ if entity.starts_with('#') => char::from_u32(entity[1..].parse().unwrap()).unwrap(),
            _ => panic!("unknown entity &{entity};"),
        };
        out.push(ch);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Parses a document and returns its root element.
pub fn parse(text: &str) -> Element {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = &after[after.find("?>").unwrap() + 2..];
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->").unwrap() + 3..];
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap();
            stack
                .last_mut()
                .unwrap()
                .children
                .push(Content::Text(after[..end].to_string()));
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').unwrap();
            let element = stack.pop().unwrap();
            assert_eq!(element.name, after[..end].trim(), "mismatched closing tag");
            stack
                .last_mut()
                .unwrap()
                .children
                .push(Content::Element(element));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').unwrap();
            let mut tag = &after[..end];
            let self_closing = tag.ends_with('/');
            if self_closing {
                tag = &tag[..tag.len() - 1];
            }
            let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
            let mut element = Element {
                name: tag[..name_end].to_string(),
                ..Element::default()
            };
            let mut attrs = tag[name_end..].trim_start();
            while !attrs.is_empty() {
                let eq = attrs.find('=').unwrap();
                let name = attrs[..eq].trim().to_string();
                let value_part = attrs[eq + 1..].trim_start();
                let quote = value_part.chars().next().unwrap();
                let close = value_part[1..].find(quote).unwrap();
                element
                    .attributes
                    .push((name, decode_entities(&value_part[1..=close])));
                attrs = value_part[close + 2..].trim_start();
            }
            if self_closing {
                stack
                    .last_mut()
                    .unwrap()
                    .children
                    .push(Content::Element(element));
            } else {
                stack.push(element);
            }
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            stack
                .last_mut()
                .unwrap()
                .children
                .push(Content::Text(decode_entities(&rest[..end])));
            rest = &rest[end..];
        }
    }
    let mut document = stack.pop().unwrap();
    assert!(stack.is_empty(), "unclosed elements");
    document
        .children
        .retain(|c| matches!(c, Content::Element(_)));
    match document.children.pop() {
        Some(Content::Element(root)) => root,
        _ => panic!("no root element"),
    }
}
