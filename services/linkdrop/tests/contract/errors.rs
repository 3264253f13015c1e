//! Errors of no operation: problem+json for a route that does not exist and a method a
//! route does not have.

use linkdrop_testkit::ADMIN_KEY;
use reqwest::Method;

use crate::kit::{Contract, expect};

pub async fn of_no_operation(t: &mut Contract) {
    let (app, samples) = (&t.app, &mut t.samples);
    let no_route = app.admin_get("/v1/nothing-here").await;
    expect(&samples.http("problem", no_route), 404, Some("not_found"));
    let wrong_method = app
        .request(Method::DELETE, "/v1/rooms", ADMIN_KEY, None, &[])
        .await;
    expect(
        &samples.http("problem", wrong_method),
        405,
        Some("method_not_allowed"),
    );
}
