//! The examples printed under the main commands' `--help`: what a first-time admin types, in
//! the order they type it. Every line is run by the end-to-end test
//! `admin_cli::every_help_example_parses` against an empty store, so an example that no
//! longer parses fails the build's tests instead of misleading a reader.

/// `m365sync apply --help`.
pub const APPLY: &str = "Examples:
  m365sync apply firm.toml";

/// `m365sync tenant --help`.
pub const TENANT: &str = "Examples:
  m365sync tenant add --org acme --name main --ms-tenant TENANT_ID --client-id CLIENT_ID --secret-env MAIN_SECRET
  m365sync tenant test --org acme --tenant main
  m365sync tenant list --org acme
  m365sync tenant settings --org acme --tenant main";

/// `m365sync mailbox --help`.
pub const MAILBOX: &str = "Examples:
  m365sync mailbox import --csv users.csv --org acme --tenant main
  m365sync mailbox add --org acme --tenant main --address info@contoso.example --shared --user alice@contoso.example
  m365sync mailbox list --org acme --tenant main
  m365sync mailbox verify --org acme --tenant main";

/// `m365sync contact --help`.
pub const CONTACT: &str = "Examples:
  m365sync contact add --org acme --name 'Alice Smith' --email alice@smith.example --external-id C1
  m365sync contact import --org acme contacts.csv
  m365sync contact list --org acme --filter smith
  m365sync contact timeline --org acme ext:C1";

/// `m365sync entity --help`.
pub const ENTITY: &str = "Examples:
  m365sync entity add --org acme --name 'Smith household' --kind household --domain smith.example --external-id H1
  m365sync entity import --org acme entities.csv
  m365sync entity list --org acme";

/// `m365sync rules --help`.
pub const RULES: &str = "Examples:
  m365sync rules add --org acme --effect exclude --target any_address --pattern '*@salesforce.com'
  m365sync rules add --org acme --tenant main --user alice@contoso.example --effect exclude --target any_address --pattern '*@family.example'
  m365sync rules list --org acme";

/// `m365sync activate --help`.
pub const ACTIVATE: &str = "Examples:
  m365sync activate --org acme --tenant main
  m365sync activate --org acme --tenant main --json";

/// `m365sync events --help`.
pub const EVENTS: &str = "Examples:
  m365sync events settings --org acme --tenant main
  m365sync events settings --org acme --direction two_way --outbound-months 24
  m365sync events sync-events --org acme --tenant main --user alice@contoso.example off
  m365sync events list --org acme --tenant main --user alice@contoso.example";

/// `m365sync mail --help`.
pub const MAIL: &str = "Examples:
  m365sync mail send --org acme --tenant main --from alice@contoso.example --to client@example.com --subject 'Your review' --body-file body.txt --attach report.pdf --regarding contact:42 --idempotency-key crm-activity-1001
  m365sync mail outbox list --org acme --state failed";

/// `m365sync sync --help`.
pub const SYNC: &str = "Examples:
  m365sync sync run --org acme --tenant main
  m365sync sync run --org acme --tenant main --mailbox alice@contoso.example";

/// `m365sync serve --help`.
pub const SERVE: &str = "Examples:
  m365sync serve
  m365sync serve --sandbox
  M365SYNC_DATABASE_URL=postgres://m365sync@db/m365sync m365sync serve";

/// `m365sync runs --help`.
pub const RUNS: &str = "Examples:
  m365sync runs --org acme --tenant main
  m365sync runs --org acme --tenant main --json";

/// `m365sync logs --help`.
pub const LOGS: &str = "Examples:
  m365sync logs --org acme --tenant main --errors-only --since 7d
  m365sync logs --run 42";

/// `m365sync retry --help`.
pub const RETRY: &str = "Examples:
  m365sync retry 42
  m365sync retry --errors --since 30d";

/// `m365sync plugin --help`.
pub const PLUGIN: &str = "Examples:
  m365sync plugin new --lang rust my-rules
  m365sync plugin test builtin:exclusion
  m365sync plugin install my-rules.wasm --org acme --slot exclusion --cases cases.toml
  m365sync plugin shadow my-rules.wasm --org acme --slot exclusion --cases cases.toml
  m365sync plugin shadow diff --org acme --slot exclusion
  m365sync plugin promote --org acme --slot exclusion
  m365sync plugin replay my-rules.wasm --org acme --slot exclusion --since 30d
  m365sync plugin list --org acme";

/// `m365sync match --help`.
pub const MATCH: &str = "Examples:
  m365sync match run --org acme";

/// `m365sync review --help`.
pub const REVIEW: &str = "Examples:
  m365sync review list --org acme --tenant main --user alice@contoso.example --since 2026-11-01
  m365sync review map --org acme --tenant main --user alice@contoso.example --contact 42 101 102";

/// `m365sync token --help`.
pub const TOKEN: &str = "Examples:
  m365sync token create --service --out admin.token
  m365sync token create --org acme
  m365sync token create --org acme --tenant main --user alice@contoso.example
  m365sync token list --org acme";

/// `m365sync key --help`.
pub const KEY: &str = "Examples:
  m365sync key generate --out m365sync.key";
