//! The HTTP edge: the middleware stack, the JSON body and query extractors, the error answer
//! every layer's errors become, the OpenAPI document and the routes (thin handlers: parse,
//! authorise, call the domain, answer; no route imports another).
//!
//! May import every layer below it; nothing below imports it.

pub mod answer;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
