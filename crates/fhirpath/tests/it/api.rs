//! Behaviour of the public API beyond the official suite: reference
//! resolution, the injected clock, strict mode, variables, tracing, typed
//! choice navigation and resource limits.

use std::sync::Mutex;

use fhirpath::{
    DateTime, Env, EvalErrorKind, ResourceResolver, Value, check, compile, evaluate,
    evaluate_with_context,
};
use serde_json::{Value as Json, json};

fn eval_with<'a>(expr: &str, resource: &'a Json, env: &Env<'a>) -> Vec<String> {
    let compiled = compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    evaluate(&compiled, resource, env)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .iter()
        .map(|v| v.to_string())
        .collect()
}

fn eval(expr: &str, resource: &Json) -> Vec<String> {
    eval_with(expr, resource, &Env::new())
}

fn observation() -> Json {
    json!({
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "#pr1"}, {"reference": "Organization/org1"}],
        "contained": [{"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Who"}]}],
        "effectiveDateTime": "2019-01-31T10:00:00+01:00",
        "valueQuantity": {"value": 4000, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 1.50, "unit": "g", "code": "g", "system": "http://unitsofmeasure.org"}},
            {"code": {"text": "b"}, "valueString": "text"}
        ]
    })
}

#[test]
fn choice_types_and_type_operators() {
    let obs = observation();
    assert_eq!(eval("Observation.value.unit", &obs), ["mg"]);
    assert_eq!(eval("Observation.value is Quantity", &obs), ["true"]);
    assert_eq!(
        eval("Observation.value.ofType(Quantity).value", &obs),
        ["4000"]
    );
    assert_eq!(
        eval("Observation.effective.type().name", &obs),
        ["dateTime"]
    );
    // The `as` operator filters collections (R4 SearchParameter style).
    assert_eq!(
        eval("(Observation.component.value as Quantity).unit", &obs),
        ["g"]
    );
    assert_eq!(
        eval("(Observation.component.value as string)", &obs),
        ["text"]
    );
    // The `as()` function keeps the singleton rule.
    let err = evaluate(
        &compile("Observation.component.value.as(Quantity)").unwrap(),
        &obs,
        &Env::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, EvalErrorKind::NotSingleton);
    // Using the JSON property name of a choice element is not FHIRPath: it
    // is tolerated when evaluating, but rejected by strict mode and check().
    let expr = compile("Observation.valueQuantity.unit").unwrap();
    assert_eq!(eval("Observation.valueQuantity.unit", &obs), ["mg"]);
    let err = evaluate(&expr, &obs, &Env::new().with_strict(true)).unwrap_err();
    assert_eq!(err.kind, EvalErrorKind::Semantic);
    assert_eq!(
        check(&expr, "Observation").unwrap_err().kind,
        EvalErrorKind::Semantic
    );
}

#[test]
fn quantities_and_dates() {
    let obs = observation();
    assert_eq!(eval("Observation.value = 4 'g'", &obs), ["true"]);
    assert_eq!(eval("Observation.value > 3.9 'g'", &obs), ["true"]);
    assert_eq!(
        eval(
            "Observation.component.value.where($this is Quantity) ~ 1500 'mg'",
            &obs
        ),
        ["true"]
    );
    assert_eq!(eval("2 'wk' = 14 'd'", &obs), ["true"]);
    assert_eq!(eval("1 year = 1 'a'", &obs), Vec::<String>::new());
    assert_eq!(eval("@2019-01-01 + 1 month", &obs), ["2019-02-01"]);
    assert_eq!(eval("@2019-01-31 + 1 month", &obs), ["2019-02-28"]);
    assert_eq!(
        eval("Observation.effective + 2 hours", &obs),
        ["2019-01-31T12:00:00+01:00"]
    );
    assert_eq!(
        eval("Observation.effective > @2019-01-31T08:00:00Z", &obs),
        ["true"]
    );
    assert_eq!(
        eval("Observation.effective > @2019", &obs),
        Vec::<String>::new()
    );
    assert_eq!(eval("Observation.effective > @2018", &obs), ["true"]);
}

#[test]
fn resolve_contained_and_stubs() {
    let obs = observation();
    assert_eq!(
        eval("Observation.performer[0].resolve().name.family", &obs),
        ["Who"]
    );
    assert_eq!(
        eval(
            "Observation.subject.where(resolve() is Patient).reference",
            &obs
        ),
        ["Patient/p1"]
    );
    assert_eq!(
        eval(
            "Observation.performer.where(resolve() is Organization).reference",
            &obs
        ),
        ["Organization/org1"]
    );
    assert_eq!(
        eval(
            "Observation.performer.where(resolve() is Practitioner).reference",
            &obs
        ),
        ["#pr1"]
    );
    let no_stubs = Env::new().with_reference_stubs(false);
    assert!(eval_with("Observation.subject.resolve()", &obs, &no_stubs).is_empty());
}

#[test]
fn resolve_in_bundle_and_with_resolver() {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a", "gender": "female"}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:1"}}},
            {"fullUrl": "http://x/fhir/Encounter/e2", "resource": {"resourceType": "Encounter", "subject": {"reference": "Patient/a"}}}
        ]
    });
    let env = Env::new().with_root_resource(&bundle);
    let first = &bundle["entry"][1]["resource"];
    let second = &bundle["entry"][2]["resource"];
    assert_eq!(
        eval_with("Encounter.subject.resolve().gender", first, &env),
        ["female"]
    );
    assert_eq!(
        eval_with("Encounter.subject.resolve().gender", second, &env),
        ["female"]
    );
    assert_eq!(
        eval_with("%rootResource.type", first, &env),
        ["transaction"]
    );

    struct Store(Json);
    impl ResourceResolver for Store {
        fn resolve(&self, reference: &str) -> Option<&Json> {
            (reference == "Patient/p1").then_some(&self.0)
        }
    }
    let store = Store(json!({"resourceType": "Patient", "id": "p1", "birthDate": "1970"}));
    let env = Env::new().with_resolver(&store);
    assert_eq!(
        eval_with(
            "Observation.subject.resolve().birthDate",
            &observation(),
            &env
        ),
        ["1970"]
    );
}

#[test]
fn clock_comes_from_the_environment() {
    let patient = json!({"resourceType": "Patient", "birthDate": "2000-02-29"});
    let err = evaluate(&compile("today()").unwrap(), &patient, &Env::new()).unwrap_err();
    assert_eq!(err.kind, EvalErrorKind::NoClock);
    let now = DateTime::from_unix_millis(951_782_400_000, 600).unwrap(); // 2000-02-29T00:00Z
    let env = Env::new().with_now(now);
    assert_eq!(
        eval_with("now()", &patient, &env),
        ["2000-02-29T10:00:00.000+10:00"]
    );
    assert_eq!(eval_with("today()", &patient, &env), ["2000-02-29"]);
    assert_eq!(eval_with("timeOfDay()", &patient, &env), ["10:00:00.000"]);
    assert_eq!(
        eval_with("Patient.birthDate = today()", &patient, &env),
        ["true"]
    );
}

#[test]
fn variables_context_and_trace() {
    let patient = json!({"resourceType": "Patient", "id": "p", "name": [{"given": ["A", "B"]}]});
    let env = Env::new().with_string_variable("greeting", "hello");
    assert_eq!(
        eval_with("%greeting & ' ' & Patient.id", &patient, &env),
        ["hello p"]
    );
    assert_eq!(
        eval_with("%`vs-gender`", &patient, &env),
        ["http://hl7.org/fhir/ValueSet/gender"]
    );
    let err = evaluate(&compile("%missing").unwrap(), &patient, &env).unwrap_err();
    assert_eq!(err.kind, EvalErrorKind::UnknownVariable);

    let names = evaluate(&compile("Patient.name").unwrap(), &patient, &env).unwrap();
    let given = evaluate_with_context(
        &compile("given.first() & %resource.id").unwrap(),
        &patient,
        &names,
        &env,
    )
    .unwrap();
    assert_eq!(
        given.iter().map(Value::to_string).collect::<Vec<_>>(),
        ["Ap"]
    );

    let seen = Mutex::new(Vec::new());
    let tracer = |name: &str, values: &[Value<'_>]| {
        seen.lock()
            .unwrap()
            .push(format!("{name}:{}", values.len()))
    };
    let env = Env::new().with_tracer(&tracer);
    assert_eq!(
        eval_with("Patient.name.given.trace('g').count()", &patient, &env),
        ["2"]
    );
    assert_eq!(*seen.lock().unwrap(), ["g:2"]);
}

#[test]
fn primitive_extensions() {
    let patient = json!({
        "resourceType": "Patient",
        "birthDate": "1970-01-01",
        "_birthDate": {"extension": [{"url": "http://x/time", "valueTime": "10:00:00"}]},
        "name": [{"given": [null, "B"], "_given": [{"extension": [{"url": "http://x/n", "valueString": "A"}]}, null]}]
    });
    assert_eq!(
        eval(
            "Patient.birthDate.extension('http://x/time').value",
            &patient
        ),
        ["10:00:00"]
    );
    assert_eq!(eval("Patient.name.given.count()", &patient), ["2"]);
    assert_eq!(
        eval("Patient.name.given.first().hasValue()", &patient),
        ["false"]
    );
    assert_eq!(
        eval("Patient.name.given.select(hasValue())", &patient),
        ["false", "true"]
    );
    assert_eq!(
        eval("Patient.name.given.extension('http://x/n').value", &patient),
        ["A"]
    );
}

#[test]
fn strict_mode_and_check() {
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["A"]}]});
    // A long-lived environment can be used with shorter-lived resources.
    let strict: Env<'static> = Env::new().with_strict(true);
    let run = |expr: &str, env: &Env<'_>| {
        evaluate(&compile(expr).unwrap(), &patient, env).map(|v| v.len())
    };
    assert_eq!(run("Patient.name.given1", &Env::new()), Ok(0));
    assert_eq!(
        run("Patient.name.given1", &strict).unwrap_err().kind,
        EvalErrorKind::Semantic
    );
    assert_eq!(run("Encounter.status", &Env::new()), Ok(0));
    assert!(run("Encounter.status", &strict).is_err());
    assert!(check(&compile("Patient.name.given").unwrap(), "Patient").is_ok());
    assert!(check(&compile("Patient.name.given1").unwrap(), "Patient").is_err());
    assert!(check(&compile("Patient.name").unwrap(), "NoSuchType").is_err());
}

#[test]
fn limits_on_hostile_input() {
    let empty = json!({});
    // Deep nesting is rejected at compile time, not by overflowing the stack.
    assert!(compile(&format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000))).is_err());
    assert!(compile(&format!("{}1", "-".repeat(100_000))).is_err());
    assert!(compile(&vec!["a"; 100_000].join(".")).is_err());
    assert!(compile(&format!("1{}", " + 1".repeat(100_000))).is_err());
    assert!(
        compile(&format!(
            "{}true{}",
            "iif(true, ".repeat(1000),
            ", false)".repeat(1000)
        ))
        .is_err()
    );
    // Expressions just inside the limits evaluate fine.
    assert_eq!(eval(&format!("1{}", " + 1".repeat(100)), &empty), ["101"]);
    let nested = format!("{}1{}", "(1).select(".repeat(40), ")".repeat(40));
    assert_eq!(eval(&nested, &empty), ["1"]);
    // Runaway repeat() is stopped.
    let err = evaluate(
        &compile("(1).repeat($this + 1)").unwrap(),
        &empty,
        &Env::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, EvalErrorKind::Limit);
    // Invalid regular expressions are compile errors when literal.
    assert!(compile("'a'.matches('(')").is_err());
}

#[test]
fn values_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<fhirpath::Expr>();
    assert_send_sync::<Value<'static>>();
    assert_send_sync::<Env<'static>>();
}
