//! Single-resource interactions, headers, negotiation and bad input.

use serde_json::{Value, json};

use crate::harness::{BASE, apps, apps_with, config};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn patient(nhs: &str) -> String {
    json!({"resourceType":"Patient","identifier":[{"system":NHS,"value":nhs}],"name":[{"family":"Hughes","given":["Margaret"]}],"gender":"female","birthDate":"1938-04-12"}).to_string()
}

#[tokio::test]
async fn create_read_vread_update_delete_history() {
    for t in apps().await {
        let r = t.post("/fhir/Patient", &patient("9990000018")).await;
        assert_eq!(r.status, 201, "{}: {}", t.name, r.text);
        let body = r.json();
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(
            r.header("location"),
            Some(format!("{BASE}/Patient/{id}/_history/1").as_str())
        );
        assert_eq!(r.header("etag"), Some("W/\"1\""));
        assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
        assert_eq!(
            r.header("content-type"),
            Some("application/fhir+json; charset=utf-8")
        );

        let r = t.get(&format!("/fhir/Patient/{id}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["name"][0]["family"], "Hughes");
        assert_eq!(r.header("etag"), Some("W/\"1\""));

        // Update: the body must carry the id.
        let mut v: Value = serde_json::from_str(&patient("9990000018")).unwrap();
        v["gender"] = json!("other");
        let r = t.put(&format!("/fhir/Patient/{id}"), &v.to_string()).await;
        assert_eq!(r.status, 400, "no id in body: {}", r.text);
        v["id"] = json!(id);
        let r = t.put(&format!("/fhir/Patient/{id}"), &v.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["meta"]["versionId"], "2");
        assert_eq!(
            r.header("content-location"),
            Some(format!("{BASE}/Patient/{id}/_history/2").as_str())
        );
        v["id"] = json!("other-id");
        assert_eq!(
            t.put(&format!("/fhir/Patient/{id}"), &v.to_string())
                .await
                .status,
            400,
            "id mismatch"
        );

        let r = t.get(&format!("/fhir/Patient/{id}/_history/1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["gender"], "female");
        assert_eq!(
            t.get(&format!("/fhir/Patient/{id}/_history/9"))
                .await
                .status,
            404
        );
        assert_eq!(
            t.get(&format!("/fhir/Patient/{id}/_history/x"))
                .await
                .status,
            400
        );

        let r = t
            .call("DELETE", &format!("/fhir/Patient/{id}"), &[], None)
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("etag"), Some("W/\"3\""));
        let r = t.get(&format!("/fhir/Patient/{id}")).await;
        assert_eq!(r.status, 410);
        assert_eq!(r.outcome().0, "deleted");
        // Deleting again changes nothing.
        assert_eq!(
            t.call("DELETE", &format!("/fhir/Patient/{id}"), &[], None)
                .await
                .status,
            204
        );

        let h = t.get(&format!("/fhir/Patient/{id}/_history")).await;
        assert_eq!(h.status, 200);
        let h = h.json();
        assert_eq!(h["type"], "history");
        let methods: Vec<&str> = h["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, vec!["DELETE", "PUT", "POST"]);
        assert!(h["entry"][0].get("resource").is_none());
        assert_eq!(h["entry"][1]["resource"]["meta"]["versionId"], "2");

        // Update-as-create with a client id, then re-create after delete.
        let mut c: Value = serde_json::from_str(&patient("9990000026")).unwrap();
        c["id"] = json!("client-chosen");
        let r = t.put("/fhir/Patient/client-chosen", &c.to_string()).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(
            r.header("location"),
            Some(format!("{BASE}/Patient/client-chosen/_history/1").as_str())
        );
        assert_eq!(t.get("/fhir/Patient/never").await.status, 404);
        assert_eq!(t.get("/fhir/Patient/never/_history").await.status, 404);
    }
}

#[tokio::test]
async fn if_match_and_conditional_interactions() {
    for t in apps().await {
        let r = t.post("/fhir/Patient", &patient("9990000018")).await;
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let mut v = r.json();
        v["gender"] = json!("unknown");
        let put = |etag: &'static str| {
            let v = v.to_string();
            let uri = format!("/fhir/Patient/{id}");
            let t = &t;
            async move { t.call("PUT", &uri, &[("If-Match", etag)], Some(&v)).await }
        };
        let r = put("W/\"2\"").await;
        assert_eq!(r.status, 412, "{}: stale version: {}", t.name, r.text);
        assert_eq!(r.outcome().0, "conflict");
        assert_eq!(put("W/\"1\"").await.status, 200);
        assert_eq!(put("W/\"1\"").await.status, 412, "now stale");
        assert_eq!(put("garbage").await.status, 400);

        // Conditional create: a match returns the existing resource, no new version.
        let q = format!("identifier={NHS}|9990000018");
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", &q)],
                Some(&patient("9990000018")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["id"], id);
        assert_eq!(r.json()["meta"]["versionId"], "2");
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", &format!("identifier={NHS}|9990000026"))],
                Some(&patient("9990000026")),
            )
            .await;
        assert_eq!(r.status, 201);
        let second = r.json()["id"].as_str().unwrap().to_owned();
        // Two matches: 412.
        let both = format!("_id={id},{second}");
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", &both)],
                Some(&patient("9990000034")),
            )
            .await;
        assert_eq!(r.status, 412, "{}", r.text);
        // Unknown criteria are refused, not ignored.
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", "colour=x")],
                Some(&patient("9990000034")),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.outcome().1, "SC-1004");

        // Conditional update by identifier: one match updates it.
        let mut upd: Value = serde_json::from_str(&patient("9990000026")).unwrap();
        upd["gender"] = json!("male");
        let r = t
            .put("/fhir/Patient?identifier=9990000026", &upd.to_string())
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["id"], second);
        // No match creates.
        let r = t
            .put(
                &format!("/fhir/Patient?identifier={NHS}|9990000042"),
                &patient("9990000042"),
            )
            .await;
        assert_eq!(r.status, 201);
        // Conditional delete.
        let r = t
            .call(
                "DELETE",
                &format!("/fhir/Patient?identifier={NHS}|9990000042"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 204);
        let r = t
            .get(&format!("/fhir/Patient?identifier={NHS}|9990000042"))
            .await;
        assert!(r.json().get("entry").is_none());
        let r = t
            .call(
                "DELETE",
                &format!("/fhir/Patient?_id={id},{second}"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 412);
    }
}

#[tokio::test]
async fn prefer_return() {
    for t in apps().await {
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("Prefer", "return=minimal")],
                Some(&patient("9990000018")),
            )
            .await;
        assert_eq!(r.status, 201);
        assert!(r.text.is_empty());
        assert!(r.header("location").is_some());
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("Prefer", "return=OperationOutcome")],
                Some(&patient("9990000018")),
            )
            .await;
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_an_outcome_and_nothing_stored() {
    for t in apps().await {
        // (method, uri, body, headers, expected status, expected issue code)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<String>,
            &'a [(&'a str, &'a str)],
            u16,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "POST",
                "/fhir/Patient",
                Some("{not json".into()),
                &[],
                400,
                "structure",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some("[]".into()),
                &[],
                400,
                "structure",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(r#"{"resourceType":"Patient","colour":"blue"}"#.into()),
                &[],
                422,
                "structure",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(r#"{"resourceType":"Patient","gender":"yes"}"#.into()),
                &[],
                422,
                "code-invalid",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(r#"{"resourceType":"Patient","birthDate":"1938-13-01"}"#.into()),
                &[],
                422,
                "value",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(patient("9990000019")),
                &[],
                422,
                "value",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(
                    r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#.into(),
                ),
                &[],
                400,
                "invalid",
            ),
            (
                "POST",
                "/fhir/Observation",
                Some(r#"{"resourceType":"Observation","code":{"text":"x"}}"#.into()),
                &[],
                422,
                "required",
            ),
            (
                "POST",
                "/fhir/Widget",
                Some(r#"{"resourceType":"Widget"}"#.into()),
                &[],
                404,
                "not-supported",
            ),
            (
                "GET",
                "/fhir/Patient/has%20space",
                None,
                &[],
                400,
                "invalid",
            ),
            ("GET", "/fhir/Patient/a_b", None, &[], 400, "invalid"),
            (
                "GET",
                "/fhir/Patient?colour=x",
                None,
                &[],
                400,
                "not-supported",
            ),
            (
                "GET",
                "/fhir/Patient?_count=lots",
                None,
                &[],
                400,
                "invalid",
            ),
            (
                "GET",
                "/fhir/Patient/_history?_since=yesterday",
                None,
                &[],
                400,
                "invalid",
            ),
            ("GET", "/nowhere", None, &[], 404, "not-found"),
            ("GET", "/fhir/Patient/a/b/c/d", None, &[], 404, "not-found"),
            ("PATCH", "/fhir/Patient/a", None, &[], 405, "not-supported"),
            (
                "GET",
                "/fhir/metadata",
                None,
                &[("Accept", "application/fhir+xml")],
                406,
                "not-supported",
            ),
            (
                "GET",
                "/fhir/metadata?_format=xml",
                None,
                &[],
                406,
                "not-supported",
            ),
            (
                "POST",
                "/fhir/Patient",
                Some(patient("9990000018")),
                &[("Content-Type", "application/xml")],
                415,
                "not-supported",
            ),
        ];
        for (method, uri, body, headers, status, code) in cases {
            let r = t.call(method, uri, headers, body.as_deref()).await;
            assert_eq!(
                r.status.as_u16(),
                status,
                "{} {method} {uri}: {}",
                t.name,
                r.text
            );
            assert_eq!(r.outcome().0, code, "{method} {uri}: {}", r.text);
            assert!(!r.text.to_lowercase().contains("sqlite") && !r.text.contains("panicked"));
        }
        // The validation outcome names the element.
        let r = t
            .post(
                "/fhir/Patient",
                r#"{"resourceType":"Patient","name":[{"family":"A","colour":"x"}]}"#,
            )
            .await;
        assert_eq!(
            r.json()["issue"][0]["expression"][0],
            "Patient.name[0].colour"
        );
        // The NHS number itself is not echoed back.
        let r = t.post("/fhir/Patient", &patient("9990000019")).await;
        assert!(!r.text.contains("9990000019"));
        // Nothing was stored by any of the above.
        let h = t.get("/fhir/_history").await.json();
        assert!(h.get("entry").is_none(), "{}: {h}", t.name);
    }
}

#[tokio::test]
async fn body_limit_is_413() {
    let mut c = config();
    c.max_body_bytes = 1024;
    for t in apps_with(c).await {
        let big = format!(
            r#"{{"resourceType":"Patient","name":[{{"text":"{}"}}]}}"#,
            "x".repeat(4096)
        );
        let r = t.post("/fhir/Patient", &big).await;
        assert_eq!(r.status, 413, "{}", r.text);
        assert_eq!(r.outcome().0, "too-costly");
    }
}

#[tokio::test]
async fn accept_variants_and_lenient_handling() {
    for t in apps().await {
        for accept in [
            "application/fhir+json",
            "application/json",
            "*/*",
            "text/html, application/fhir+json;q=0.9",
        ] {
            assert_eq!(
                t.call("GET", "/fhir/metadata", &[("Accept", accept)], None)
                    .await
                    .status,
                200,
                "{accept}"
            );
        }
        assert_eq!(t.get("/fhir/metadata?_format=json").await.status, 200);
        assert_eq!(
            t.get("/fhir/metadata?_format=application/fhir%2Bjson")
                .await
                .status,
            200
        );
        let r = t
            .call(
                "GET",
                "/fhir/Patient?colour=x&_count=1",
                &[("Prefer", "handling=lenient")],
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-sharedcare-ignored-parameters"), Some("colour"));
        assert_eq!(
            r.json()["link"][0]["url"],
            format!("{BASE}/Patient?_count=1")
        );
    }
}

#[tokio::test]
async fn search_paging_and_history_paging() {
    for t in apps().await {
        let mut ids = vec![];
        for nhs in [
            "9990000018",
            "9990000026",
            "9990000034",
            "9990000042",
            "9990000050",
        ] {
            ids.push(
                t.post("/fhir/Patient", &patient(nhs)).await.json()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        ids.sort();
        // Search pages by id with a cursor.
        let mut url = "/fhir/Patient?_count=2".to_owned();
        let mut seen = vec![];
        loop {
            let b = t.get(&url).await.json();
            assert_eq!(b["type"], "searchset");
            for e in b["entry"].as_array().into_iter().flatten() {
                assert_eq!(e["search"]["mode"], "match");
                seen.push(e["resource"]["id"].as_str().unwrap().to_owned());
            }
            let next = b["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
            match next {
                Some(n) => url = n.strip_prefix("http://test.local").unwrap().to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        let b = t
            .get(&format!(
                "/fhir/Patient?identifier={NHS}|9990000034,{NHS}|9990000050"
            ))
            .await
            .json();
        assert_eq!(b["entry"].as_array().unwrap().len(), 2);

        // History pages newest first, and _since filters.
        let all = t.get("/fhir/Patient/_history").await.json();
        assert_eq!(all["entry"].as_array().unwrap().len(), 5);
        let third_time = all["entry"][2]["resource"]["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .to_owned();
        let since = t
            .get(&format!("/fhir/Patient/_history?_since={third_time}"))
            .await
            .json();
        assert_eq!(since["entry"].as_array().unwrap().len(), 3);
        // Every write also records a Provenance: 5 versions + 5 Provenances.
        let page1 = t.get("/fhir/_history?_count=8").await.json();
        assert_eq!(page1["entry"].as_array().unwrap().len(), 8);
        let provenances = page1["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Provenance")
            .count();
        assert!(provenances >= 3, "{provenances}");
        let next = page1["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let page2 = t
            .get(next.strip_prefix("http://test.local").unwrap())
            .await
            .json();
        assert_eq!(page2["entry"].as_array().unwrap().len(), 2);
        assert!(
            page2["link"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["relation"] != "next")
        );
    }
}

#[tokio::test]
async fn validate_operation_and_metadata() {
    for t in apps().await {
        let r = t
            .post("/fhir/Patient/$validate", &patient("9990000018"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["issue"][0]["severity"], "information");
        let r = t
            .post("/fhir/Patient/$validate", &patient("9990000019"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["issue"][0]["severity"], "error");
        let wrapped = json!({"resourceType":"Parameters","parameter":[{"name":"resource","resource":serde_json::from_str::<Value>(&patient("9990000018")).unwrap()}]});
        assert_eq!(
            t.post("/fhir/Patient/$validate", &wrapped.to_string())
                .await
                .json()["issue"][0]["severity"],
            "information"
        );
        let mut with_id: Value = serde_json::from_str(&patient("9990000018")).unwrap();
        with_id["id"] = json!("p1");
        assert_eq!(
            t.post("/fhir/Patient/p1/$validate", &with_id.to_string())
                .await
                .status,
            200
        );
        assert_eq!(
            t.post("/fhir/Patient/p2/$validate", &with_id.to_string())
                .await
                .status,
            400
        );
        // $validate stores nothing.
        assert!(t.get("/fhir/_history").await.json().get("entry").is_none());

        let cs = t.get("/fhir/metadata").await.json();
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_eq!(cs["fhirVersion"], "4.0.1");
        assert_eq!(cs["rest"][0]["resource"].as_array().unwrap().len(), 147);
        assert_eq!(t.get("/healthz").await.status, 200);
        assert_eq!(t.get("/readyz").await.status, 200);
    }
}

/// Many writers update one resource with If-Match, retrying on 412: every
/// increment must survive (no lost update).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_if_match_writers_lose_nothing() {
    for t in apps().await {
        let t = std::sync::Arc::new(t);
        let r = t
            .put(
                "/fhir/Basic/counter",
                r#"{"resourceType":"Basic","id":"counter","code":{"text":"0"}}"#,
            )
            .await;
        assert_eq!(r.status, 201);
        let writers = 8;
        let each = 10;
        let mut handles = vec![];
        for _ in 0..writers {
            let t = t.clone();
            handles.push(tokio::spawn(async move {
                let mut done = 0;
                let mut conflicts = 0;
                while done < each {
                    let cur = t.get("/fhir/Basic/counter").await;
                    let etag = cur.header("etag").unwrap().to_owned();
                    let mut v = cur.json();
                    let n: u64 = v["code"]["text"].as_str().unwrap().parse().unwrap();
                    v["code"]["text"] = json!((n + 1).to_string());
                    let r = t
                        .call(
                            "PUT",
                            "/fhir/Basic/counter",
                            &[("If-Match", &etag)],
                            Some(&v.to_string()),
                        )
                        .await;
                    match r.status.as_u16() {
                        200 => done += 1,
                        412 | 409 => conflicts += 1,
                        other => panic!("unexpected {other}: {}", r.text),
                    }
                }
                conflicts
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let v = t.get("/fhir/Basic/counter").await.json();
        assert_eq!(
            v["code"]["text"],
            (writers * each).to_string(),
            "{}",
            t.name
        );
        assert_eq!(v["meta"]["versionId"], (writers * each + 1).to_string());
    }
}
