//! Identity: who a shopper is, as a Danish identity broker tells it.
//!
//! Danish shoppers prove who they are with MitID. A private company (a telecom brand) does not
//! talk to MitID itself: it uses a certified *broker* (Signicat, Idura, Signaturgruppen, …),
//! which is an ordinary OpenID Connect provider. The platform is the relying party: it sends
//! the shopper to the broker's authorization endpoint (code flow with PKCE and a nonce),
//! exchanges the code for an ID token signed with the broker's RSA key, and checks that
//! token against the broker's JWKS. Every tenant can have a broker issuer of its own.
//!
//! The ID token carries the name, birth date and assurance level (NSIS `loa`), never the CPR
//! number: a private service provider may only ask the broker whether a CPR number the
//! shopper typed *matches* the person who logged in (a limited number of tries per login).
//!
//! CPR numbers themselves are pure domain rules: `tcom_processors::domain::cpr`.
//!
//! - [`broker_sim`]: a broker simulator for tests and the local run (`tcom oidc-sim`), a real
//!   OpenID Connect provider with fixed test identities and simulator-only controls.

pub mod broker_sim;
