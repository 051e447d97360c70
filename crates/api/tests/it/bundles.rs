//! Batch and transaction Bundles.

use serde_json::{Value, json};

use crate::harness::apps;

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn tx(entries: Vec<Value>) -> String {
    json!({"resourceType":"Bundle","type":"transaction","entry":entries}).to_string()
}

fn post(full_url: &str, resource: Value) -> Value {
    let t = resource["resourceType"].as_str().unwrap().to_owned();
    json!({"fullUrl": full_url, "resource": resource, "request": {"method":"POST","url": t}})
}

fn patient(nhs: &str) -> Value {
    json!({"resourceType":"Patient","identifier":[{"system":NHS,"value":nhs}],"gender":"female"})
}

fn observation(subject: &str) -> Value {
    json!({"resourceType":"Observation","status":"final","code":{"text":"Weight"},"subject":{"reference":subject}})
}

#[tokio::test]
async fn transaction_resolves_placeholders_and_is_atomic() {
    for t in apps().await {
        let p = "urn:uuid:9e0c5a5e-0000-4000-8000-000000000001";
        // Entries out of order: the observation refers to a patient created later in the list.
        let r = t
            .post(
                "/fhir",
                &tx(vec![
                    post(
                        "urn:uuid:9e0c5a5e-0000-4000-8000-000000000002",
                        observation(p),
                    ),
                    post(p, patient("9990000018")),
                ]),
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let b = r.json();
        assert_eq!(b["type"], "transaction-response");
        assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
        let obs_loc = b["entry"][0]["response"]["location"].as_str().unwrap();
        let pat_loc = b["entry"][1]["response"]["location"].as_str().unwrap();
        assert!(pat_loc.starts_with("Patient/") && pat_loc.ends_with("/_history/1"));
        let obs = t
            .get(&format!(
                "/fhir/{}",
                obs_loc.split("/_history").next().unwrap()
            ))
            .await
            .json();
        let pat_ref = pat_loc.split("/_history").next().unwrap();
        assert_eq!(
            obs["subject"]["reference"], pat_ref,
            "placeholder rewritten"
        );

        // One invalid entry: nothing of the bundle is stored.
        let before = t.get("/fhir/_history").await.json()["entry"]
            .as_array()
            .unwrap()
            .len();
        let bad = tx(vec![
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000003",
                patient("9990000026"),
            ),
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000004",
                json!({"resourceType":"Observation","code":{"text":"no status"}}),
            ),
        ]);
        let r = t.post("/fhir", &bad).await;
        assert_eq!(r.status, 422, "{}", r.text);
        let expr = r.json()["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(expr.starts_with("Bundle.entry[1].resource"), "{expr}");
        let after = t.get("/fhir/_history").await.json()["entry"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(before, after);

        // A failure found mid-transaction (If-Match on a stale version) rolls back the earlier entries too.
        let pid = pat_ref.strip_prefix("Patient/").unwrap();
        let stale = tx(vec![
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000005",
                patient("9990000034"),
            ),
            json!({"resource": {"resourceType":"Patient","id":pid,"gender":"male"}, "request": {"method":"PUT","url":format!("Patient/{pid}"),"ifMatch":"W/\"7\""}}),
        ]);
        let r = t.post("/fhir", &stale).await;
        assert_eq!(r.status, 412, "{}", r.text);
        assert_eq!(r.json()["issue"][0]["expression"][0], "Bundle.entry[1]");
        assert_eq!(
            t.get("/fhir/_history").await.json()["entry"]
                .as_array()
                .unwrap()
                .len(),
            before
        );
        assert!(
            t.get(&format!("/fhir/Patient?identifier={NHS}|9990000034"))
                .await
                .json()
                .get("entry")
                .is_none()
        );

        // A placeholder that names no entry is refused.
        let r = t
            .post(
                "/fhir",
                &tx(vec![post(
                    "urn:uuid:9e0c5a5e-0000-4000-8000-000000000006",
                    observation("urn:uuid:9e0c5a5e-0000-4000-8000-00000000ffff"),
                )]),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
}

#[tokio::test]
async fn transaction_conditionals_and_order() {
    for t in apps().await {
        let cond = |nhs: &str, full: &str| {
            let mut e = post(full, patient(nhs));
            e["request"]["ifNoneExist"] = json!(format!("identifier={NHS}|{nhs}"));
            e
        };
        let first = tx(vec![cond(
            "9990000018",
            "urn:uuid:9e0c5a5e-0000-4000-8000-000000000011",
        )]);
        let r = t.post("/fhir", &first).await.json();
        assert_eq!(r["entry"][0]["response"]["status"], "201 Created");
        let created = r["entry"][0]["response"]["location"]
            .as_str()
            .unwrap()
            .split("/_history")
            .next()
            .unwrap()
            .to_owned();
        // The same again matches: 200, no new version; a reference to its placeholder resolves to the existing id.
        let second = tx(vec![
            cond(
                "9990000018",
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000012",
            ),
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000013",
                observation("urn:uuid:9e0c5a5e-0000-4000-8000-000000000012"),
            ),
            // A conditional reference resolves by search.
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000014",
                observation(&format!("Patient?identifier={NHS}|9990000018")),
            ),
        ]);
        let r = t.post("/fhir", &second).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = r.json();
        assert_eq!(r["entry"][0]["response"]["status"], "200 OK");
        assert_eq!(
            r["entry"][0]["response"]["location"],
            format!("{created}/_history/1")
        );
        for i in [1, 2] {
            let loc = r["entry"][i]["response"]["location"]
                .as_str()
                .unwrap()
                .split("/_history")
                .next()
                .unwrap()
                .to_owned();
            assert_eq!(
                t.get(&format!("/fhir/{loc}")).await.json()["subject"]["reference"],
                created
            );
        }
        // A conditional reference with no match fails the transaction.
        let r = t
            .post(
                "/fhir",
                &tx(vec![post(
                    "urn:uuid:9e0c5a5e-0000-4000-8000-000000000015",
                    observation(&format!("Patient?identifier={NHS}|9990000069")),
                )]),
            )
            .await;
        assert_eq!(r.status, 412, "{}", r.text);

        // DELETE runs before POST, GET after the writes, whatever the entry order.
        let pid = created.strip_prefix("Patient/").unwrap();
        let ordered = tx(vec![
            json!({"request":{"method":"GET","url":format!("Patient?identifier={NHS}|9990000026")}}),
            post(
                "urn:uuid:9e0c5a5e-0000-4000-8000-000000000016",
                patient("9990000026"),
            ),
            json!({"request":{"method":"DELETE","url":format!("Patient/{pid}")}}),
        ]);
        let r = t.post("/fhir", &ordered).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = r.json();
        assert_eq!(r["entry"][0]["resource"]["type"], "searchset");
        assert_eq!(
            r["entry"][0]["resource"]["entry"].as_array().unwrap().len(),
            1,
            "GET saw the POST"
        );
        assert_eq!(r["entry"][2]["response"]["status"], "204 No Content");
        assert_eq!(t.get(&format!("/fhir/{created}")).await.status, 410);
    }
}

#[tokio::test]
async fn batch_entries_succeed_or_fail_alone() {
    for t in apps().await {
        let batch = json!({"resourceType":"Bundle","type":"batch","entry":[
            {"resource": patient("9990000018"), "request": {"method":"POST","url":"Patient"}},
            {"resource": patient("9990000019"), "request": {"method":"POST","url":"Patient"}},
            {"request": {"method":"GET","url":"Patient/nope"}},
            {"resource": {"resourceType":"Basic","id":"b1","code":{"text":"x"}}, "request": {"method":"PUT","url":"Basic/b1"}},
        ]});
        let r = t.post("/fhir", &batch.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = r.json();
        assert_eq!(r["type"], "batch-response");
        assert_eq!(r["entry"][0]["response"]["status"], "201 Created");
        assert_eq!(
            r["entry"][1]["response"]["status"],
            "422 Unprocessable Entity"
        );
        assert_eq!(
            r["entry"][1]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        assert_eq!(r["entry"][2]["response"]["status"], "404 Not Found");
        assert_eq!(r["entry"][3]["response"]["status"], "201 Created");
        assert_eq!(t.get("/fhir/Basic/b1").await.status, 200);

        let r = t
            .post("/fhir", r#"{"resourceType":"Bundle","type":"collection"}"#)
            .await;
        assert_eq!(r.status, 400);
        let r = t.post("/fhir", r#"{"resourceType":"Patient"}"#).await;
        assert_eq!(r.status, 400);
    }
}

#[tokio::test]
async fn transactions_refuse_overlapping_identities() {
    for t in apps().await {
        let p = json!({"resourceType": "Patient", "id": "dup", "gender": "male"});
        let put = json!({"resource": p, "request": {"method": "PUT", "url": "Patient/dup"}});
        let r = t.post("/fhir", &tx(vec![put.clone(), put.clone()])).await;
        assert_eq!(r.status, 400, "{}", r.text);
        let del = json!({"request": {"method": "DELETE", "url": "Patient/dup"}});
        let r = t.post("/fhir", &tx(vec![put, del])).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            t.get("/fhir/Patient/dup").await.status,
            404,
            "nothing stored"
        );
    }
}
