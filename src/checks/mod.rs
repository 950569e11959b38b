//! One file per check-id prefix. Each function turns a typed outcome from `net` into
//! `CheckResult`s through the catalogue; none of them touches the network.

pub mod auth;
pub mod cloud;
pub mod config;
pub mod dns;
pub mod exec_credential;
pub mod http;
pub mod kas;
pub mod netpol;
pub mod rbac;
pub mod runner;
pub mod tcp;
pub mod tls;
pub mod tools;
