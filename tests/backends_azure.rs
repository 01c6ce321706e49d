//! The jobs of tests/backends.rs on a real Azure Blob Storage emulator (Azurite on loopback),
//! reached the way a user would: `az://container/prefix` with the emulator's endpoint and an
//! explicit account key in the environment.

mod common;

use common::*;

#[test]
fn main_job_on_azure() {
    jobs::main_job(&Env::azure("mainjob"));
}

#[test]
fn azure_backend_conformance() {
    jobs::backend_conformance(&Env::azure("conformance"));
}

#[test]
fn missing_container_and_wrong_password_on_azure() {
    jobs::exit_codes(&Env::azure("codes"), &azure::container("empty"), "az");
}
