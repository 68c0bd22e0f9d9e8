//! Price tables and bills: what a [`Usage`] costs per month under a versioned price table.
//!
//! # Price tables
//!
//! A [`PriceTable`] is a TOML data file in `sim/pricing/`, one per version, embedded in the
//! binary. Each names its sources and the dates it applies to, and carries the plan minimum,
//! the included allowances, the unit prices and three platform rules:
//!
//! - `websocket_message_ratio`: how many incoming WebSocket messages make one billable
//!   Durable Objects request (20 since April 2024, 1 before);
//! - `gb_s_per_object_second`: GB-s billed per object-second (0.128: 128 MB per object, and
//!   Cloudflare's examples divide by 1,000 MB per GB);
//! - `idle_tail_billed`: whether [`Usage::do_idle_tail_seconds`] is billed as duration;
//!
//! and a [`Rounding`] mode for the two Durable Objects compute lines. A rate may carry a
//! `note`, shown beside its line of a bill (why a line is $0, how its unit is defined).
//!
//! | name | period | rule that sets it apart |
//! |---|---|---|
//! | `cloudflare-2026-08` (default) | Aug 2026 onward | DO overage rounded up to whole millions |
//! | `cloudflare-2026-01` | 7 Jan – Jul 2026 | proportional; SQLite storage billed |
//! | `cloudflare-2024-04` | Apr 2024 – 6 Jan 2026 | proportional; SQLite storage free ($0) |
//! | `cloudflare-2024-01` | Jan – Mar 2024 | incoming WebSocket messages billed 1:1; SQLite $0 |
//! | `seed-2024-12` | — | the seed design document's hand-estimate prices |
//!
//! The Cloudflare tables' periods follow each other day by day, without gap or overlap (a
//! test checks it). Storage of SQLite-backed objects — rows read, rows written, stored data —
//! was free until 2026-01-06: Cloudflare's changelog entry "Billing for SQLite Storage"
//! enabled its billing with a target date of 2026-01-07, charging only usage on and after that
//! date; compute was always billed. So the tables before that date price the three SQLite
//! lines at $0 (their allowances kept as published), and `cloudflare-2026-01` on bills them.
//!
//! **A month that straddles a switch** (January 2026: days 1–6 free, 7–31 charged): dosim
//! prices one month under one table and does not split it. Price it under the later table
//! with the SQLite quantities of the days on and after the switch only (the allowances are
//! monthly, so they apply to those days' usage in full), as Cloudflare charges them.
//!
//! **GB-month**: Cloudflare counts stored data as the average, over the 30-day billing
//! period, of each day's peak stored bytes (its Workflows pricing page defines the GB-month
//! so, "identical to Durable Objects SQL storage"). A usage file gives that figure; for a
//! simulated or driven month, [`crate::usage::monthly_stored_gb_months`] computes it from the
//! rows written and says where it can only approximate it.

//! # The bill
//!
//! [`price`] turns a usage block into a [`Bill`] of [`LineItem`]s, always in this order and
//! always all present (a line with nothing to charge costs $0.00), except the plan minimum
//! which appears only when the table has one:
//! [`PLAN_MINIMUM`], [`WORKERS_REQUESTS`], [`WORKERS_CPU_TIME`], [`DO_REQUESTS`],
//! [`DO_DURATION`], [`SQLITE_ROWS_READ`], [`SQLITE_ROWS_WRITTEN`], [`SQLITE_STORAGE`].
//!
//! Each line charges `billable = max(0, quantity − included)`, then
//! `cost = billable × unit_price_usd / price_per`, rounded to the cent (half away from zero).
//! The plan minimum is a flat monthly subscription that buys the allowances; usage charges are
//! added to it, so `total_usd` is the sum of the line costs (a bill always adds up).
//!
//! ## Rounding up ("next million")
//!
//! Under [`Rounding::RoundUpMillion`], the two Durable Objects compute lines round their
//! billable amount — what is left **after** the allowance — up to a whole multiple of
//! 1,000,000 of the line's own unit before the rate applies: 1 to 1,000,000 billable requests
//! are charged as 1,000,000 requests; 152,960 billable GB-s as 1,000,000 GB-s. Zero stays
//! zero and an exact multiple is not rounded further. This is what Cloudflare's Durable
//! Objects pricing page shows since August 2026. Workers lines and SQLite storage lines are
//! always proportional: the Workers page's examples are proportional and the Durable Objects
//! page does not apply the rounding to storage. `billable` in a line item is the amount the
//! rate was applied to, after this rounding.
//!
//! # Exactness
//!
//! Prices and costs are [`Decimal`], never `f64`. Usage quantities arrive as `f64`; each is
//! converted to a decimal rounded to [`QUANTITY_DECIMALS`] (6) decimal places, half away from
//! zero: requests and rows are whole numbers in practice, and a millionth of a GB-s or of a
//! GB-month is far below a cent at any listed price. Derived quantities (messages / ratio,
//! object-seconds × factor) are computed in decimal and rounded the same way. A quantity that
//! is negative, NaN, infinite or above [`MAX_QUANTITY`] is refused ([`QuantityError`]), never
//! clamped or counted as 0, and every sum and product is checked: [`price`] returns an error
//! rather than a wrong bill, and never panics.

//! # Serialization
//!
//! [`Bill`] serializes with serde to the keys `pricing`, `line_items` (each `name`, `unit`,
//! `quantity`, `included`, `billable`, `unit_price_usd`, `price_per`, `cost_usd`) and
//! `total_usd`. Every decimal is written as a JSON **string** (`"total_usd": "142.95"`), so
//! that no reader parses money through a binary float. [`LineItem::detail`], the breakdown
//! shown by [`Bill::render_text`], is not serialized.

use std::fmt::Write as _;

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::usage::Usage;

/// Name of the plan-minimum line item (present only when the table has a minimum).
pub const PLAN_MINIMUM: &str = "Workers Paid plan minimum";
/// Name of the Workers requests line item.
pub const WORKERS_REQUESTS: &str = "Workers requests";
/// Name of the Workers CPU time line item.
pub const WORKERS_CPU_TIME: &str = "Workers CPU time";
/// Name of the Durable Objects requests line item.
pub const DO_REQUESTS: &str = "DO requests";
/// Name of the Durable Objects duration (GB-s) line item.
pub const DO_DURATION: &str = "DO duration";
/// Name of the SQLite rows read line item.
pub const SQLITE_ROWS_READ: &str = "SQLite rows read";
/// Name of the SQLite rows written line item.
pub const SQLITE_ROWS_WRITTEN: &str = "SQLite rows written";
/// Name of the SQLite storage line item.
pub const SQLITE_STORAGE: &str = "SQLite storage";

/// Decimal places kept when a usage quantity is converted from `f64`.
pub const QUANTITY_DECIMALS: u32 = 6;

/// Largest quantity priced (10^15 of any unit: more than a month of any real deployment, and
/// small enough that every product and sum of a bill stays exact); larger values are refused.
pub const MAX_QUANTITY: f64 = 1e15;

/// The built-in tables, current first.
const BUILTIN: [(&str, &str); 5] = [
    (
        "cloudflare-2026-08",
        include_str!("../pricing/cloudflare-2026-08.toml"),
    ),
    (
        "cloudflare-2026-01",
        include_str!("../pricing/cloudflare-2026-01.toml"),
    ),
    (
        "cloudflare-2024-04",
        include_str!("../pricing/cloudflare-2024-04.toml"),
    ),
    (
        "cloudflare-2024-01",
        include_str!("../pricing/cloudflare-2024-01.toml"),
    ),
    ("seed-2024-12", include_str!("../pricing/seed-2024-12.toml")),
];

/// What can go wrong when choosing or reading a price table.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// No built-in table has this name.
    #[error("unknown price table `{name}`; known tables: {}", known.join(", "))]
    UnknownTable {
        /// The name asked for.
        name: String,
        /// The built-in table names, current first.
        known: Vec<String>,
    },
    /// The TOML text is not a price table.
    #[error("price table {origin}: {source}")]
    Parse {
        /// Where the text came from (a table name or a file path).
        origin: String,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// The table parsed but breaks a rule (for example a zero `price_per`).
    #[error("price table `{name}`: {reason}")]
    Invalid {
        /// The table's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A usage quantity cannot be priced.
    #[error("usage `{key}`: {cause}")]
    Quantity {
        /// The usage key, for example `worker_requests`.
        key: &'static str,
        /// What is wrong with its value (in the message, so not also a `source()`: a chain
        /// printer such as anyhow's `{:#}` would print it twice).
        cause: QuantityError,
    },
    /// A line's arithmetic left the exact decimal range (only with a table that breaks
    /// [`PriceTable::validate`], since quantities are bounded by [`MAX_QUANTITY`]).
    #[error("price table `{table}`: the {line} line cannot be computed exactly")]
    Arithmetic {
        /// The table's name.
        table: String,
        /// The line item's name.
        line: &'static str,
    },
}

/// Why a usage quantity cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum QuantityError {
    /// NaN or infinite.
    #[error("must be a finite number, found {0}")]
    NotFinite(f64),
    /// Below zero.
    #[error("must not be negative, found {0}")]
    Negative(f64),
    /// Above [`MAX_QUANTITY`].
    #[error("{0:e} is above the largest quantity dosim prices ({max:e})", max = MAX_QUANTITY)]
    TooLarge(f64),
}

/// A usage quantity as an exact decimal rounded to [`QUANTITY_DECIMALS`], or why it cannot be
/// priced: NaN, infinite, negative or above [`MAX_QUANTITY`]. The one check of every quantity,
/// for usage files and for simulated or driven usage alike.
pub fn to_quantity(x: f64) -> Result<Decimal, QuantityError> {
    if !x.is_finite() {
        return Err(QuantityError::NotFinite(x));
    }
    if x < 0.0 {
        return Err(QuantityError::Negative(x));
    }
    if x > MAX_QUANTITY {
        return Err(QuantityError::TooLarge(x));
    }
    // Every finite f64 in [0, 1e15] converts (values below 1e-28 become 0); the fallback only
    // guards against a future rust_decimal that would refuse one.
    Ok(Decimal::from_f64(x)
        .map(round_quantity)
        .unwrap_or(Decimal::ZERO))
}

/// How the Durable Objects compute lines turn billable usage into a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Charge exactly `billable × unit_price / price_per` (Cloudflare's pages until July 2026).
    Proportional,
    /// Round billable requests and GB-s up to a whole multiple of 1,000,000 first (Cloudflare's
    /// Durable Objects page since August 2026).
    RoundUpMillion,
}

/// One priced quantity: an allowance, then a price per block of units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Units included in the plan each month.
    pub included: Decimal,
    /// Price in USD of `price_per` units beyond the allowance.
    pub unit_price_usd: Decimal,
    /// How many units `unit_price_usd` buys (1,000,000 for "per million").
    pub price_per: Decimal,
    /// Shown beside the line of a bill: why it is $0, how its unit is defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A versioned price table (one TOML file in `sim/pricing/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Short name, for example `cloudflare-2026-08`.
    pub name: String,
    /// One-line human description.
    pub title: String,
    /// Where the numbers come from: URLs (or, for the seed, a document path).
    pub source: Vec<String>,
    /// First day the table applies, `YYYY-MM-DD`.
    pub effective_from: String,
    /// Last day the table applies (inclusive), `YYYY-MM-DD`; `None` while current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    /// Free-text notes: rules, caveats, discrepancies.
    #[serde(default)]
    pub notes: String,
    /// Monthly plan minimum in USD (a flat subscription that includes the allowances); 0 for
    /// none.
    pub plan_minimum_usd: Decimal,
    /// Incoming WebSocket messages per billable Durable Objects request.
    pub websocket_message_ratio: Decimal,
    /// GB-s billed per object-second of active duration.
    pub gb_s_per_object_second: Decimal,
    /// Whether idle-tail object-seconds are billed as duration.
    pub idle_tail_billed: bool,
    /// Rounding of the Durable Objects requests and duration lines.
    pub rounding: Rounding,
    /// Workers requests (unit: requests).
    pub workers_requests: Rate,
    /// Workers CPU time (unit: CPU-ms).
    pub workers_cpu_ms: Rate,
    /// Durable Objects requests (unit: requests).
    pub do_requests: Rate,
    /// Durable Objects duration (unit: GB-s).
    pub do_duration: Rate,
    /// SQLite rows read (unit: rows).
    pub sqlite_rows_read: Rate,
    /// SQLite rows written (unit: rows).
    pub sqlite_rows_written: Rate,
    /// SQLite stored data (unit: GB-month).
    pub sqlite_storage: Rate,
}

impl PriceTable {
    /// Name of the default table: Cloudflare's current prices.
    pub const DEFAULT: &'static str = "cloudflare-2026-08";

    /// Names of the built-in tables, current first.
    pub fn names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    /// The built-in table called `name`; an unknown name is an error listing the known ones.
    pub fn builtin(name: &str) -> Result<PriceTable, PricingError> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::parse(text, n),
            None => Err(PricingError::UnknownTable {
                name: name.to_string(),
                known: Self::names().into_iter().map(String::from).collect(),
            }),
        }
    }

    /// Every built-in table, current first.
    pub fn all() -> Vec<PriceTable> {
        BUILTIN
            .iter()
            .map(|(name, text)| Self::parse(text, name).unwrap_or_else(|e| panic!("built-in {e}")))
            .collect()
    }

    /// Reads a table from TOML text (the format of `sim/pricing/*.toml`) and validates it.
    pub fn from_toml_str(text: &str) -> Result<PriceTable, PricingError> {
        Self::parse(text, "(text)")
    }

    fn parse(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        let table: PriceTable = toml::from_str(text).map_err(|source| PricingError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        table.validate()?;
        Ok(table)
    }

    /// Checks the rules [`price`] relies on: a name and a source, ISO dates in order,
    /// non-negative prices and allowances, and positive divisors.
    pub fn validate(&self) -> Result<(), PricingError> {
        let invalid = |reason: String| PricingError::Invalid {
            name: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("`name` is empty".into()));
        }
        if self.source.iter().all(|s| s.trim().is_empty()) {
            return Err(invalid("`source` names no source".into()));
        }
        let Some(from) = day_number(&self.effective_from) else {
            return Err(invalid(format!(
                "`effective_from` {:?} is not a date YYYY-MM-DD",
                self.effective_from
            )));
        };
        if let Some(to) = &self.effective_to {
            let Some(to_day) = day_number(to) else {
                return Err(invalid(format!(
                    "`effective_to` {to:?} is not a date YYYY-MM-DD"
                )));
            };
            if to_day < from {
                return Err(invalid("`effective_to` is before `effective_from`".into()));
            }
        }
        if self.plan_minimum_usd.is_sign_negative() {
            return Err(invalid("`plan_minimum_usd` is negative".into()));
        }
        if self.websocket_message_ratio <= Decimal::ZERO {
            return Err(invalid("`websocket_message_ratio` must be positive".into()));
        }
        if self.gb_s_per_object_second.is_sign_negative() {
            return Err(invalid("`gb_s_per_object_second` is negative".into()));
        }
        for (key, rate) in self.rates() {
            if rate.included.is_sign_negative() || rate.unit_price_usd.is_sign_negative() {
                return Err(invalid(format!("`{key}` has a negative amount")));
            }
            if rate.price_per <= Decimal::ZERO {
                return Err(invalid(format!("`{key}.price_per` must be positive")));
            }
        }
        Ok(())
    }

    fn rates(&self) -> [(&'static str, &Rate); 7] {
        [
            ("workers_requests", &self.workers_requests),
            ("workers_cpu_ms", &self.workers_cpu_ms),
            ("do_requests", &self.do_requests),
            ("do_duration", &self.do_duration),
            ("sqlite_rows_read", &self.sqlite_rows_read),
            ("sqlite_rows_written", &self.sqlite_rows_written),
            ("sqlite_storage", &self.sqlite_storage),
        ]
    }
}

/// Days since 1970-01-01 of a calendar date written `YYYY-MM-DD`, or `None` when the text is
/// not one (a wrong shape, month 13, 30 February).
fn day_number(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    /// What is charged, for example [`DO_REQUESTS`].
    pub name: String,
    /// Unit of `quantity`, `included` and `billable`: "requests", "CPU-ms", "GB-s", "rows",
    /// "GB-month" or "month".
    pub unit: String,
    /// Billable usage before the allowance (for DO requests: connects + other requests +
    /// incoming messages / ratio; for DO duration: GB-s).
    pub quantity: Decimal,
    /// Allowance included in the plan.
    pub included: Decimal,
    /// Units the rate was applied to: `quantity − included` (never below 0), after the
    /// table's rounding.
    pub billable: Decimal,
    /// Price in USD of `price_per` units.
    pub unit_price_usd: Decimal,
    /// Number of units `unit_price_usd` is for (1,000,000 for "per million").
    pub price_per: Decimal,
    /// Charge in USD, rounded to the cent.
    pub cost_usd: Decimal,
    /// How `quantity` was made up, for people (not serialized).
    #[serde(skip)]
    pub detail: Option<String>,
}

/// A monthly bill: line items and their total. The default is an empty bill (no table, no
/// lines, $0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bill {
    /// Name of the price table used.
    pub pricing: String,
    /// The charges, in a fixed order (see the module documentation).
    pub line_items: Vec<LineItem>,
    /// Sum of the line items' `cost_usd`.
    pub total_usd: Decimal,
}

impl Bill {
    /// The total in USD as a float, for plots and comparisons (the exact value is
    /// [`Bill::total_usd`]).
    pub fn total_f64(&self) -> f64 {
        self.total_usd.to_f64().unwrap_or(f64::NAN)
    }

    /// The line item called `name`, if the bill has one.
    pub fn line(&self, name: &str) -> Option<&LineItem> {
        self.line_items.iter().find(|l| l.name == name)
    }

    /// The bill as an aligned plain-text table, followed by the breakdown notes.
    pub fn render_text(&self) -> String {
        const HEADER: [&str; 7] = [
            "Item", "Quantity", "Unit", "Included", "Billable", "Price", "Cost",
        ];
        let rows: Vec<[String; 7]> = self
            .line_items
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    fmt_number(l.quantity),
                    l.unit.clone(),
                    fmt_number(l.included),
                    fmt_number(l.billable),
                    fmt_price(l),
                    fmt_money(l.cost_usd),
                ]
            })
            .collect();
        let mut width = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // Text columns are left-aligned, numbers right-aligned.
        let right = [false, true, false, true, true, false, true];
        let line = |cells: [&str; 7]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = width[i].saturating_sub(cell.chars().count());
                if right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i + 1 < cells.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push('\n');
            out
        };
        let full: usize = width.iter().sum::<usize>() + 2 * (width.len() - 1);
        let mut out = format!(
            "Bill under price table `{}` (USD per month)\n",
            self.pricing
        );
        out.push_str(&line(HEADER));
        out.push_str(&"-".repeat(full));
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
        out.push_str(&"-".repeat(full));
        out.push('\n');
        let total = fmt_money(self.total_usd);
        let label = "Total";
        let pad = full.saturating_sub(label.len() + total.len());
        let _ = writeln!(out, "{label}{}{total}", " ".repeat(pad));
        let notes: Vec<_> = self
            .line_items
            .iter()
            .filter_map(|l| l.detail.as_ref().map(|d| (l.name.as_str(), d)))
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for (name, detail) in notes {
                let _ = writeln!(out, "  {name}: {detail}");
            }
        }
        out
    }
}

/// Prices `usage` (one month of it) under `table`.
///
/// A quantity that cannot be priced (negative, NaN, infinite, above [`MAX_QUANTITY`]) is an
/// error naming its usage key, and so is arithmetic that leaves the exact decimal range
/// (possible only with a table that fails [`PriceTable::validate`]); nothing is clamped or
/// silently counted as 0, and nothing panics.
pub fn price(usage: &Usage, table: &PriceTable) -> Result<Bill, PricingError> {
    let q = |key: &'static str, x: f64| {
        to_quantity(x).map_err(|cause| PricingError::Quantity { key, cause })
    };
    let overflow = |line: &'static str| PricingError::Arithmetic {
        table: table.name.clone(),
        line,
    };
    let mut items = Vec::with_capacity(8);
    if table.plan_minimum_usd > Decimal::ZERO {
        let one = Decimal::ONE;
        items.push(LineItem {
            name: PLAN_MINIMUM.to_string(),
            unit: "month".to_string(),
            quantity: one,
            included: Decimal::ZERO,
            billable: one,
            unit_price_usd: table.plan_minimum_usd,
            price_per: one,
            cost_usd: cents(table.plan_minimum_usd),
            detail: Some(
                "flat monthly subscription; it includes the allowances, usage beyond them is added"
                    .to_string(),
            ),
        });
    }
    items.push(charge(
        table,
        WORKERS_REQUESTS,
        "requests",
        q("worker_requests", usage.worker_requests)?,
        &table.workers_requests,
        Rounding::Proportional,
        None,
    )?);
    items.push(charge(
        table,
        WORKERS_CPU_TIME,
        "CPU-ms",
        q("worker_cpu_ms", usage.worker_cpu_ms)?,
        &table.workers_cpu_ms,
        Rounding::Proportional,
        None,
    )?);

    let other = q("do_requests", usage.do_requests)?;
    let connects = q("do_websocket_connects", usage.do_websocket_connects)?;
    let messages_in = q("do_websocket_messages_in", usage.do_websocket_messages_in)?;
    let messages_out = q("do_websocket_messages_out", usage.do_websocket_messages_out)?;
    let message_requests = messages_in
        .checked_div(table.websocket_message_ratio)
        .map(round_quantity)
        .ok_or_else(|| overflow(DO_REQUESTS))?;
    let do_requests = other
        .checked_add(connects)
        .and_then(|x| x.checked_add(message_requests))
        .ok_or_else(|| overflow(DO_REQUESTS))?;
    let requests_detail = format!(
        "{} HTTP/RPC/alarm + {} WebSocket connects + {} incoming messages / {} = {} \
         (outgoing messages free: {})",
        fmt_number(other),
        fmt_number(connects),
        fmt_number(messages_in),
        fmt_number(table.websocket_message_ratio),
        fmt_number(do_requests),
        fmt_number(messages_out),
    );
    items.push(charge(
        table,
        DO_REQUESTS,
        "requests",
        do_requests,
        &table.do_requests,
        table.rounding,
        Some(requests_detail),
    )?);

    let active = q("do_active_seconds", usage.do_active_seconds)?;
    let tail = q("do_idle_tail_seconds", usage.do_idle_tail_seconds)?;
    let billed_seconds = if table.idle_tail_billed {
        active
            .checked_add(tail)
            .ok_or_else(|| overflow(DO_DURATION))?
    } else {
        active
    };
    let gb_s = billed_seconds
        .checked_mul(table.gb_s_per_object_second)
        .map(round_quantity)
        .ok_or_else(|| overflow(DO_DURATION))?;
    let duration_detail = format!(
        "({} active + {} idle-tail object-s, tail {}) x {} GB-s per object-s = {} GB-s",
        fmt_number(active),
        fmt_number(tail),
        if table.idle_tail_billed {
            "billed"
        } else {
            "not billed"
        },
        fmt_number(table.gb_s_per_object_second),
        fmt_number(gb_s),
    );
    items.push(charge(
        table,
        DO_DURATION,
        "GB-s",
        gb_s,
        &table.do_duration,
        table.rounding,
        Some(duration_detail),
    )?);

    items.push(charge(
        table,
        SQLITE_ROWS_READ,
        "rows",
        q("sqlite_rows_read", usage.sqlite_rows_read)?,
        &table.sqlite_rows_read,
        Rounding::Proportional,
        None,
    )?);
    items.push(charge(
        table,
        SQLITE_ROWS_WRITTEN,
        "rows",
        q("sqlite_rows_written", usage.sqlite_rows_written)?,
        &table.sqlite_rows_written,
        Rounding::Proportional,
        None,
    )?);
    items.push(charge(
        table,
        SQLITE_STORAGE,
        "GB-month",
        q("sqlite_stored_gb_months", usage.sqlite_stored_gb_months)?,
        &table.sqlite_storage,
        Rounding::Proportional,
        None,
    )?);

    let total_usd = items
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.cost_usd))
        .ok_or_else(|| overflow("total"))?;
    Ok(Bill {
        pricing: table.name.clone(),
        line_items: items,
        total_usd,
    })
}

/// One usage line: allowance, rounding, rate, cents. The rate's note, if any, follows the
/// line's own breakdown in `detail`.
fn charge(
    table: &PriceTable,
    name: &'static str,
    unit: &str,
    quantity: Decimal,
    rate: &Rate,
    rounding: Rounding,
    detail: Option<String>,
) -> Result<LineItem, PricingError> {
    let overflow = || PricingError::Arithmetic {
        table: table.name.clone(),
        line: name,
    };
    let over = quantity
        .checked_sub(rate.included)
        .ok_or_else(overflow)?
        .max(Decimal::ZERO);
    let billable = match rounding {
        Rounding::Proportional => over,
        Rounding::RoundUpMillion => {
            let million = Decimal::from(1_000_000u32);
            over.checked_div(million)
                .and_then(|blocks| blocks.ceil().checked_mul(million))
                .ok_or_else(overflow)?
        }
    };
    let cost = billable
        .checked_mul(rate.unit_price_usd)
        .and_then(|x| x.checked_div(rate.price_per))
        .ok_or_else(overflow)?;
    let detail = match (detail, &rate.note) {
        (Some(d), Some(n)) => Some(format!("{d}; {n}")),
        (d, n) => d.or_else(|| n.clone()),
    };
    Ok(LineItem {
        name: name.to_string(),
        unit: unit.to_string(),
        quantity: quantity.normalize(),
        included: rate.included.normalize(),
        billable: billable.normalize(),
        unit_price_usd: rate.unit_price_usd,
        price_per: rate.price_per.normalize(),
        cost_usd: cents(cost),
        detail,
    })
}

fn round_quantity(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(QUANTITY_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
}

/// USD rounded to the cent, half away from zero, always with two decimals.
fn cents(d: Decimal) -> Decimal {
    let mut c = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    c.rescale(2);
    c
}

/// A quantity for display (the exact value stays in the JSON): from 100 up a whole number
/// (`55042.372881` → `55,042`), from 1 two decimals, below 1 up to six; trailing zeros
/// dropped.
fn fmt_number(d: Decimal) -> String {
    let dp = if d.abs() >= Decimal::ONE_HUNDRED {
        0
    } else if d.abs() >= Decimal::ONE {
        2
    } else {
        QUANTITY_DECIMALS
    };
    let shown = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    group_digits(&shown.normalize().to_string())
}

/// `$1,234.50`: always two decimals.
fn fmt_money(d: Decimal) -> String {
    format!("${}", group_digits(&cents(d).to_string()))
}

/// Thousands separators in the integer part of a plain decimal string.
fn group_digits(s: &str) -> String {
    let (sign, s) = s.strip_prefix('-').map_or(("", s), |rest| ("-", rest));
    let (int, frac) = s.split_once('.').map_or((s, None), |(i, f)| (i, Some(f)));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `$0.30 / 1M requests`, `$12.50 / 10M GB-s`, `$0.20 / GB-month`.
fn fmt_price(l: &LineItem) -> String {
    let price = l.unit_price_usd.normalize();
    let price = if price.scale() < 2 {
        let mut p = price;
        p.rescale(2);
        p
    } else {
        price
    };
    let per = l.price_per.normalize();
    let million = Decimal::from(1_000_000u32);
    let per = if per == Decimal::ONE {
        String::new()
    } else if (per % million).is_zero() {
        format!("{}M ", fmt_number(per / million))
    } else {
        format!("{} ", fmt_number(per))
    };
    format!("${} / {per}{}", group_digits(&price.to_string()), l.unit)
}

#[cfg(test)]
mod tests {
    //! Every worked example Cloudflare published on its Durable Objects and Workers pricing
    //! pages, priced under the table of its time and checked to the cent; the seed
    //! document's two estimates; and the rules in between.
    //!
    //! Sources: the `cloudflare/cloudflare-docs` repository, which the pages are built from:
    //! `src/content/docs/durable-objects/platform/pricing.mdx` (Aug 2026, rounded up; and
    //! Apr 2024 – Jul 2026, proportional), `content/durable-objects/platform/pricing.md`
    //! (Jan – Mar 2024, messages 1:1), `content/workers/platform/pricing.md` (2022–2023, which
    //! also carried the Durable Objects examples), and
    //! `src/content/docs/workers/platform/pricing.mdx` (current Workers page).

    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn table(name: &str) -> PriceTable {
        PriceTable::builtin(name).unwrap()
    }

    /// [`price`] of a usage the test knows to be priceable.
    fn priced(usage: &Usage, table: &PriceTable) -> Bill {
        price(usage, table).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cost(bill: &Bill, name: &str) -> Decimal {
        bill.line(name)
            .unwrap_or_else(|| panic!("no line {name}"))
            .cost_usd
    }

    /// Asserts the published line costs and total, to the cent.
    fn assert_bill(bill: &Bill, lines: &[(&str, &str)], total: &str) {
        for (name, expected) in lines {
            assert_eq!(
                cost(bill, name),
                dec(expected),
                "{name}\n{}",
                bill.render_text()
            );
        }
        assert_eq!(bill.total_usd, dec(total), "total\n{}", bill.render_text());
    }

    /// A Durable Objects example: requests other than WebSocket, connects, incoming
    /// messages, active object-seconds.
    fn do_usage(requests: f64, connects: f64, messages_in: f64, active_seconds: f64) -> Usage {
        Usage {
            do_requests: requests,
            do_websocket_connects: connects,
            do_websocket_messages_in: messages_in,
            do_active_seconds: active_seconds,
            ..Usage::default()
        }
    }

    fn workers_usage(requests: f64, cpu_ms: f64) -> Usage {
        Usage {
            worker_requests: requests,
            worker_cpu_ms: cpu_ms,
            ..Usage::default()
        }
    }

    const MONTH_S: f64 = 60.0 * 60.0 * 24.0 * 30.0;

    // ---- Durable Objects pricing page, August 2026 onward (cloudflare-2026-08) ----

    #[test]
    fn do_2026_example_1_coordination_service() {
        // "A single Durable Object was called by a Worker 1.5 million times; it is active for
        // 1,000,000 seconds in the month." 500,000 billable requests, "(rounded) 1,000,000
        // requests x $0.15 / 1,000,000 = $0.15"; 128,000 GB-s within the allowance.
        // Published: "$0.15 (requests) + $0.00 (compute duration) + minimum $5/mo usage =
        // $5.15 per month".
        let bill = priced(
            &do_usage(1_500_000.0, 0.0, 0.0, 1_000_000.0),
            &table("cloudflare-2026-08"),
        );
        assert_bill(
            &bill,
            &[
                (PLAN_MINIMUM, "5.00"),
                (DO_REQUESTS, "0.15"),
                (DO_DURATION, "0.00"),
            ],
            "5.15",
        );
        assert_eq!(bill.line(DO_REQUESTS).unwrap().billable, dec("1000000"));
        assert_eq!(bill.line(DO_DURATION).unwrap().quantity, dec("128000"));
    }

    #[test]
    fn do_2026_example_2_websockets_without_hibernation() {
        // 100 objects x 50 WebSocket connections, made each day for 30 days = 150,000
        // connects; 50 messages/min x 100 objects x 60 x 8 h x 30 days = 72,000,000 messages;
        // 150,000 + 72M / 20 = 3.75M requests, 2,750,000 billable, "(rounded) 3,000,000
        // requests" = $0.45. Duration 100 x 3600 x 8 x 30 = 86,400,000 s = 11,059,200 GB-s,
        // 10,659,200 billable, "(rounded) 11,000,000 GB-s" = $137.50.
        // Published: "$0.45 + $137.50 + minimum $5/mo usage = $142.95 per month".
        let bill = priced(
            &do_usage(0.0, 150_000.0, 72_000_000.0, 86_400_000.0),
            &table("cloudflare-2026-08"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "0.45"), (DO_DURATION, "137.50")],
            "142.95",
        );
        let req = bill.line(DO_REQUESTS).unwrap();
        assert_eq!(req.quantity, dec("3750000"));
        assert_eq!(req.billable, dec("3000000"));
        let dur = bill.line(DO_DURATION).unwrap();
        assert_eq!(dur.quantity, dec("11059200"));
        assert_eq!(dur.billable, dec("11000000"));
    }

    #[test]
    fn do_2026_example_3_one_client_per_object_all_month() {
        // 100 objects, 1 connection each, 1 message/s all month: 100 connects + 259,200,000
        // messages / 20 = 12,960,100 requests, 11,960,100 billable, "(rounded) 12,000,000" =
        // $1.80. 259,200,000 s = 33,177,600 GB-s, 32,777,600 billable, "(rounded)
        // 33,000,000 GB-s" = $412.50.
        // Published: "$1.80 + $412.50 + minimum $5/mo usage = $419.30 per month".
        let bill = priced(
            &do_usage(0.0, 100.0, 100.0 * MONTH_S, 100.0 * MONTH_S),
            &table("cloudflare-2026-08"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "1.80"), (DO_DURATION, "412.50")],
            "419.30",
        );
        assert_eq!(bill.line(DO_REQUESTS).unwrap().quantity, dec("12960100"));
    }

    #[test]
    fn do_2026_example_4_hibernation() {
        // 100 objects x 100 hibernatable connections = 10,000 connects; 100 messages/min x
        // 100 objects x 60 x 24 x 30 = 432,000,000 messages; 10,000 + 432M / 20 = 21,610,000
        // requests, 20,610,000 billable, "(rounded) 21,000,000" = $3.15. Active 1 s per
        // minute per object: 4,320,000 s = 552,960 GB-s, 152,960 billable, "(rounded)
        // 1,000,000 GB-s" = $12.50.
        // Published: "$3.15 + $12.50 + minimum $5/mo usage = $20.65 per month".
        let bill = priced(
            &do_usage(0.0, 10_000.0, 432_000_000.0, 4_320_000.0),
            &table("cloudflare-2026-08"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "3.15"), (DO_DURATION, "12.50")],
            "20.65",
        );
        assert_eq!(bill.line(DO_DURATION).unwrap().quantity, dec("552960"));
        assert_eq!(bill.line(DO_DURATION).unwrap().billable, dec("1000000"));
    }

    // ---- Durable Objects pricing page, April 2024 – July 2026 ----
    //
    // That page is priced by two tables, split at 2026-01-07 when SQLite storage billing began:
    // cloudflare-2024-04 and cloudflare-2026-01. No example uses SQLite, so each reproduces
    // under both.

    const PROPORTIONAL_PAGE: [&str; 2] = ["cloudflare-2024-04", "cloudflare-2026-01"];

    #[test]
    fn do_2024_04_example_1() {
        // 1.5M requests, 1,000,000 s. "(1.5 million requests - included 1 million requests) x
        // $0.15 / 1,000,000 = $0.075"; 128,000 GB-s within the allowance.
        // Published: "~$0.075 (requests) + $0.00 (compute duration) + minimum $5/mo usage =
        // $5.08 per month".
        for name in PROPORTIONAL_PAGE {
            let bill = priced(&do_usage(1_500_000.0, 0.0, 0.0, 1_000_000.0), &table(name));
            assert_bill(
                &bill,
                &[(DO_REQUESTS, "0.08"), (DO_DURATION, "0.00")],
                "5.08",
            );
        }
    }

    #[test]
    fn do_2024_04_example_2() {
        // 150,000 connects + 72M messages / 20 = 3.75M requests: "(3.75 million requests -
        // included 1 million requests) x $0.15 / 1,000,000 = $0.41"; 11,059,200 GB-s:
        // "(11,059,200 GB-s - included 400,000 GB-s) x $12.50 / 1,000,000 = $133.24".
        // Published: "$0.41 + $133.24 + minimum $5/mo usage = $138.65 per month".
        for name in PROPORTIONAL_PAGE {
            let bill = priced(
                &do_usage(0.0, 150_000.0, 72_000_000.0, 86_400_000.0),
                &table(name),
            );
            assert_bill(
                &bill,
                &[(DO_REQUESTS, "0.41"), (DO_DURATION, "133.24")],
                "138.65",
            );
        }
    }

    #[test]
    fn do_2024_04_example_3() {
        // 100 connects + 259.2M messages / 20 = 12,960,100 requests: "(12.9 million requests
        // - included 1 million requests) x $0.15 / 1,000,000 = $1.79" (exactly $1.794015);
        // 33,177,600 GB-s: "... = $409.72".
        // Published: "$1.79 + $409.72 + minimum $5/mo usage = $416.51 per month".
        for name in PROPORTIONAL_PAGE {
            let bill = priced(
                &do_usage(0.0, 100.0, 100.0 * MONTH_S, 100.0 * MONTH_S),
                &table(name),
            );
            assert_bill(
                &bill,
                &[(DO_REQUESTS, "1.79"), (DO_DURATION, "409.72")],
                "416.51",
            );
        }
    }

    #[test]
    fn do_2024_04_example_4() {
        // 10,000 connects + 432M messages / 20 = 21,610,000 requests: "(21.6 million requests
        // - included 1 million requests) x $0.15 / 1,000,000 = $3.09"; 552,960 GB-s:
        // "(552,960 GB-s - included 400,000 GB-s) x $12.50 / 1,000,000 = $1.91".
        // Published: "$3.09 + $1.91 + minimum $5/mo usage = $10.00 per month".
        for name in PROPORTIONAL_PAGE {
            let bill = priced(
                &do_usage(0.0, 10_000.0, 432_000_000.0, 4_320_000.0),
                &table(name),
            );
            assert_bill(
                &bill,
                &[(DO_REQUESTS, "3.09"), (DO_DURATION, "1.91")],
                "10.00",
            );
        }
    }

    // ---- Durable Objects pricing page, January – March 2024 (cloudflare-2024-01) ----

    #[test]
    fn do_2024_01_starter_app() {
        // "Example: Starter app": 1.5M requests, 1,000,000 s.
        // Published: "~$0.075 (requests) + $0.00 (compute duration) + minimum $5/mo usage =
        // $5.08 per month".
        let bill = priced(
            &do_usage(1_500_000.0, 0.0, 0.0, 1_000_000.0),
            &table("cloudflare-2024-01"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "0.08"), (DO_DURATION, "0.00")],
            "5.08",
        );
    }

    #[test]
    fn do_2024_01_small_scale_real_time_app() {
        // "Example: Small-scale real-time app": 150,000 connection requests and 72,000,000
        // message requests (1:1). The page computes "(~72 million requests - included 1
        // million requests) x $0.15 / 1,000,000 = $10.65", i.e. it leaves the 150,000
        // connects out; duration "(11,059,200 GB-s - included 400,000 GB-s) x $12.50 /
        // 1,000,000 = $133.24".
        // Published: "$10.65 (requests) + $133.24 (compute duration) + minimum $5/mo usage =
        // $148.89 per month".
        let t = table("cloudflare-2024-01");
        let as_published = priced(&do_usage(0.0, 0.0, 72_000_000.0, 86_400_000.0), &t);
        assert_bill(
            &as_published,
            &[(DO_REQUESTS, "10.65"), (DO_DURATION, "133.24")],
            "148.89",
        );
        // With the connects the page lists but did not add: 71,150,000 x $0.15 / 1M =
        // $10.6725 -> $10.67, two cents above the published total.
        let complete = priced(&do_usage(0.0, 150_000.0, 72_000_000.0, 86_400_000.0), &t);
        assert_bill(&complete, &[(DO_REQUESTS, "10.67")], "148.91");
    }

    #[test]
    fn do_2024_01_medium_scale_real_time_app() {
        // "Example: Medium-scale real-time app" (hibernation): 10,000 connects, 432,000,000
        // messages (1:1): "(432 million requests - included 1 million requests) x $0.15 /
        // 1,000,000 = $64.65"; 552,960 GB-s: "= $1.91".
        // Published: "$64.65 (requests) + $1.91 (compute duration) + Minimum $5/mo usage =
        // $71.56 per month".
        let bill = priced(
            &do_usage(0.0, 10_000.0, 432_000_000.0, 4_320_000.0),
            &table("cloudflare-2024-01"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "64.65"), (DO_DURATION, "1.91")],
            "71.56",
        );
    }

    #[test]
    fn do_2024_01_large_scale_real_time_app() {
        // "Example 4: Large-scale real-time app": 100 connects, 259,200,000 messages (1:1):
        // "(259.2 million requests - included 1 million requests) x $0.15 / 1,000,000 =
        // $38.73"; 33,177,600 GB-s: "= $409.72".
        // Published: "$38.73 (requests) + $409.72 (compute duration) = $453.45 per month"
        // (the sentence omits the $5 minimum, the sum includes it).
        let bill = priced(
            &do_usage(0.0, 100.0, 100.0 * MONTH_S, 100.0 * MONTH_S),
            &table("cloudflare-2024-01"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "38.73"), (DO_DURATION, "409.72")],
            "453.45",
        );
    }

    // ---- Durable Objects examples of 2022–2023 (same rules: messages 1:1, proportional) ----

    #[test]
    fn do_2023_example_1() {
        // "If a single Durable Object was called by a Worker 1.5 million times, and was active
        // for 1,000,000 seconds in the month". Published: "Total = ~$0.08 USD + Minimum $5/mo
        // usage = $5.08".
        let bill = priced(
            &do_usage(1_500_000.0, 0.0, 0.0, 1_000_000.0),
            &table("cloudflare-2024-01"),
        );
        assert_bill(&bill, &[(DO_REQUESTS, "0.08")], "5.08");
    }

    #[test]
    fn do_2023_example_2_half_month_active() {
        // "100 Durable Objects each had 100 WebSocket connections ... approximately one message
        // a minute for a month ... actually active for half the month": 100 connects,
        // 432,000,000 messages -> "$64.65"; 129,600,000 s = 16,588,800 GB-s -> "(16,588,800
        // GB-s - included 400,000 GB-s) x $12.50 / 1,000,000 = $202.36".
        // Published: "Total = ~$64.65 USD + $202.36 USD + Minimum $5/mo usage = $272.01".
        let bill = priced(
            &do_usage(0.0, 100.0, 432_000_000.0, 100.0 * MONTH_S / 2.0),
            &table("cloudflare-2024-01"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "64.65"), (DO_DURATION, "202.36")],
            "272.01",
        );
    }

    #[test]
    fn do_2023_example_3_whole_month_active() {
        // "100 Durable Objects each had a single WebSocket connection ... one message a second
        // for a month ... active for the entire month". Published: "Total = ~$38.73 USD +
        // $409.72 USD + Minimum $5/mo usage = $453.45".
        let bill = priced(
            &do_usage(0.0, 100.0, 100.0 * MONTH_S, 100.0 * MONTH_S),
            &table("cloudflare-2024-01"),
        );
        assert_bill(
            &bill,
            &[(DO_REQUESTS, "38.73"), (DO_DURATION, "409.72")],
            "453.45",
        );
    }

    #[test]
    fn workers_unbound_2023_examples_use_the_older_0_125_factor() {
        // Not a dosim table: the 2022–2023 Workers page priced the legacy Workers *Unbound*
        // usage model at the same rates as Durable Objects (1M requests + $0.15/M, 400,000 GB-s
        // + $12.50/M) but converted with 128 MB / 1024 (x 0.125). Mapped onto the DO lines of a
        // copy of the 2024-01 table with that factor, both examples reproduce:
        // Example 1: 1.5M requests, 200,000 s -> 25,000 GB-s. Published: "Total = ~$0.08 USD +
        // Minimum $5/mo usage = $5.08".
        // Example 2: 10M requests, 6,400,000 s -> 800,000 GB-s; "$1.35" + "$5.00". Published:
        // "Total = ~$6.35 + Minimum $5/mo usage = $11.35".
        let mut t = table("cloudflare-2024-01");
        t.gb_s_per_object_second = dec("0.125");
        let ex1 = priced(&do_usage(1_500_000.0, 0.0, 0.0, 200_000.0), &t);
        assert_eq!(ex1.line(DO_DURATION).unwrap().quantity, dec("25000"));
        assert_bill(&ex1, &[(DO_REQUESTS, "0.08")], "5.08");
        let ex2 = priced(&do_usage(10_000_000.0, 0.0, 0.0, 6_400_000.0), &t);
        assert_eq!(ex2.line(DO_DURATION).unwrap().quantity, dec("800000"));
        assert_bill(
            &ex2,
            &[(DO_REQUESTS, "1.35"), (DO_DURATION, "5.00")],
            "11.35",
        );
        // With the 0.128 factor of every Durable Objects example, example 2 would differ.
        let with_0_128 = priced(
            &do_usage(10_000_000.0, 0.0, 0.0, 6_400_000.0),
            &table("cloudflare-2024-01"),
        );
        assert_eq!(with_0_128.total_usd, dec("11.59"));
    }

    // ---- Workers pricing page (current), Standard usage model ----

    #[test]
    fn workers_examples_under_every_cloudflare_table() {
        let cloudflare = PriceTable::all()
            .into_iter()
            .filter(|t| t.name.starts_with("cloudflare-"));
        for t in cloudflare {
            // Example 1: "15 million requests per month, ... an average of 7 milliseconds (ms)
            // of CPU time per request": Subscription $5.00, Requests $1.50, CPU time $1.50,
            // Total $8.00.
            let ex1 = priced(&workers_usage(15_000_000.0, 7.0 * 15_000_000.0), &t);
            assert_bill(
                &ex1,
                &[
                    (PLAN_MINIMUM, "5.00"),
                    (WORKERS_REQUESTS, "1.50"),
                    (WORKERS_CPU_TIME, "1.50"),
                ],
                "8.00",
            );
            // Example 2: 15 million requests, 80% (12 million) to static assets, which are
            // free and are not Worker requests; 3 million Worker requests at 7 ms. Published:
            // requests to Worker $0, CPU time $0, Total $5.00.
            let ex2 = priced(&workers_usage(3_000_000.0, 7.0 * 3_000_000.0), &t);
            assert_bill(
                &ex2,
                &[(WORKERS_REQUESTS, "0.00"), (WORKERS_CPU_TIME, "0.00")],
                "5.00",
            );
            // Example 3: a Cron Trigger, "720 requests/month", "3 minutes (180,000ms) of CPU
            // time per request": CPU time "$1.99" (exactly $1.992), Total $6.99.
            let ex3 = priced(&workers_usage(720.0, 180_000.0 * 720.0), &t);
            assert_bill(
                &ex3,
                &[(WORKERS_REQUESTS, "0.00"), (WORKERS_CPU_TIME, "1.99")],
                "6.99",
            );
            // Example 4: "100 million requests per month, ... 7 milliseconds (ms) of CPU time
            // per request": Requests $27.00, CPU time $13.40, Total $45.40.
            let ex4 = priced(&workers_usage(100_000_000.0, 7.0 * 100_000_000.0), &t);
            assert_bill(
                &ex4,
                &[(WORKERS_REQUESTS, "27.00"), (WORKERS_CPU_TIME, "13.40")],
                "45.40",
            );
        }
    }

    // ---- The seed design document (seed-2024-12) ----

    #[test]
    fn seed_estimate_50_users_is_7_75() {
        // seeds/do-scale-design.ja.md 3.2: "リクエスト数: ~1,500,000 = $0.75", "CPU時間:
        // ~5,000,000 GB-秒 = $6.25", "Durable Objects: ~1,500,000 = $0.75", "合計: ~$7.75/月".
        // 5,000,000 GB-s = 39,062,500 object-seconds x 0.128.
        let usage = Usage {
            worker_requests: 1_500_000.0,
            do_requests: 1_500_000.0,
            do_active_seconds: 39_062_500.0,
            ..Usage::default()
        };
        let bill = priced(&usage, &table("seed-2024-12"));
        assert!(bill.line(PLAN_MINIMUM).is_none());
        assert_eq!(bill.line(DO_DURATION).unwrap().quantity, dec("5000000"));
        assert_bill(
            &bill,
            &[
                (WORKERS_REQUESTS, "0.75"),
                (DO_DURATION, "6.25"),
                (DO_REQUESTS, "0.75"),
            ],
            "7.75",
        );
    }

    #[test]
    fn seed_estimate_200_users_is_31_00() {
        // 3.3: "リクエスト数: ~6,000,000 = $3.00", "CPU時間: ~20,000,000 GB-秒 = $25.00",
        // "Durable Objects: ~6,000,000 = $3.00", "合計: ~$31.00/月".
        let usage = Usage {
            worker_requests: 6_000_000.0,
            do_requests: 6_000_000.0,
            do_active_seconds: 156_250_000.0,
            ..Usage::default()
        };
        let bill = priced(&usage, &table("seed-2024-12"));
        assert_bill(
            &bill,
            &[
                (WORKERS_REQUESTS, "3.00"),
                (DO_DURATION, "25.00"),
                (DO_REQUESTS, "3.00"),
            ],
            "31.00",
        );
        // The same month at Cloudflare's current prices.
        let real = priced(&usage, &table(PriceTable::DEFAULT));
        assert_bill(
            &real,
            &[
                (WORKERS_REQUESTS, "0.00"),
                (DO_REQUESTS, "0.75"),
                (DO_DURATION, "250.00"),
            ],
            "255.75",
        );
    }

    // ---- Rules ----

    #[test]
    fn rounding_up_versus_proportional() {
        let up = table("cloudflare-2026-08");
        let prop = table("cloudflare-2024-04");
        // One request over the allowance: a whole million under round-up, nothing visible
        // proportionally ($0.00000015).
        let one_over = do_usage(1_000_001.0, 0.0, 0.0, 0.0);
        assert_eq!(cost(&priced(&one_over, &up), DO_REQUESTS), dec("0.15"));
        assert_eq!(cost(&priced(&one_over, &prop), DO_REQUESTS), dec("0.00"));
        assert_eq!(
            priced(&one_over, &up).line(DO_REQUESTS).unwrap().billable,
            dec("1000000")
        );
        assert_eq!(
            priced(&one_over, &prop).line(DO_REQUESTS).unwrap().billable,
            dec("1")
        );
        // An exact multiple is not rounded further: both agree.
        let exact = do_usage(3_000_000.0, 0.0, 0.0, 0.0);
        assert_eq!(cost(&priced(&exact, &up), DO_REQUESTS), dec("0.30"));
        assert_eq!(cost(&priced(&exact, &prop), DO_REQUESTS), dec("0.30"));
        // GB-s: 1 GB-s over the allowance costs a whole $12.50 when rounded up.
        let gb_s_over = do_usage(0.0, 0.0, 0.0, 400_001.0 / 0.128);
        assert_eq!(cost(&priced(&gb_s_over, &up), DO_DURATION), dec("12.50"));
        assert_eq!(cost(&priced(&gb_s_over, &prop), DO_DURATION), dec("0.00"));
        // Rounding never touches the Workers and SQLite lines.
        let u = Usage {
            worker_requests: 10_000_001.0,
            worker_cpu_ms: 30_000_001.0,
            sqlite_rows_written: 50_000_001.0,
            ..Usage::default()
        };
        let bill = priced(&u, &up);
        for name in [WORKERS_REQUESTS, WORKERS_CPU_TIME, SQLITE_ROWS_WRITTEN] {
            assert_eq!(bill.line(name).unwrap().billable, dec("1"), "{name}");
        }
        assert_eq!(bill.total_usd, dec("5.00"));
    }

    #[test]
    fn websocket_messages_20_to_1_versus_1_to_1() {
        let usage = do_usage(0.0, 0.0, 3_000_000.0, 0.0);
        let now = priced(&usage, &table("cloudflare-2024-04"));
        let then = priced(&usage, &table("cloudflare-2024-01"));
        assert_eq!(now.line(DO_REQUESTS).unwrap().quantity, dec("150000"));
        assert_eq!(cost(&now, DO_REQUESTS), dec("0.00"));
        assert_eq!(then.line(DO_REQUESTS).unwrap().quantity, dec("3000000"));
        assert_eq!(cost(&then, DO_REQUESTS), dec("0.30"));
        // Outgoing messages are free under every table.
        let out = Usage {
            do_websocket_messages_out: 1e9,
            ..Usage::default()
        };
        for t in PriceTable::all() {
            assert_eq!(
                priced(&out, &t).line(DO_REQUESTS).unwrap().quantity,
                Decimal::ZERO
            );
        }
        // A fractional message request (7 / 20) is kept, not dropped.
        let seven = priced(&do_usage(0.0, 0.0, 7.0, 0.0), &table("cloudflare-2026-08"));
        assert_eq!(seven.line(DO_REQUESTS).unwrap().quantity, dec("0.35"));
    }

    #[test]
    fn within_allowances_only_the_minimum_is_charged() {
        let usage = Usage {
            worker_requests: 10_000_000.0,
            worker_cpu_ms: 30_000_000.0,
            do_requests: 500_000.0,
            do_websocket_connects: 100_000.0,
            do_websocket_messages_in: 8_000_000.0,
            do_websocket_messages_out: 50_000_000.0,
            do_active_seconds: 3_125_000.0, // exactly 400,000 GB-s
            do_idle_tail_seconds: 0.0,
            sqlite_rows_read: 25e9,
            sqlite_rows_written: 50e6,
            sqlite_stored_gb_months: 5.0,
        };
        for name in [
            "cloudflare-2026-08",
            "cloudflare-2026-01",
            "cloudflare-2024-04",
        ] {
            let bill = priced(&usage, &table(name));
            assert_eq!(bill.total_usd, dec("5.00"), "{name}");
            assert_eq!(bill.line_items.len(), 8);
            for l in &bill.line_items[1..] {
                assert_eq!(l.cost_usd, Decimal::ZERO, "{name} {}", l.name);
                assert_eq!(l.billable, Decimal::ZERO, "{name} {}", l.name);
            }
        }
        // Nothing at all: still the subscription.
        assert_eq!(
            priced(&Usage::default(), &table("cloudflare-2026-08")).total_usd,
            dec("5.00")
        );
        assert_eq!(
            priced(&Usage::default(), &table("seed-2024-12")).total_usd,
            dec("0.00")
        );
    }

    #[test]
    fn idle_tail_follows_the_table_switch() {
        let usage = Usage {
            do_active_seconds: 10_000_000.0,
            do_idle_tail_seconds: 5_000_000.0,
            ..Usage::default()
        };
        let billed = priced(&usage, &table("cloudflare-2026-08"));
        assert_eq!(billed.line(DO_DURATION).unwrap().quantity, dec("1920000"));
        let not_billed = priced(&usage, &table("cloudflare-2024-04"));
        assert_eq!(
            not_billed.line(DO_DURATION).unwrap().quantity,
            dec("1280000")
        );
    }

    #[test]
    fn sqlite_lines() {
        let usage = Usage {
            sqlite_rows_read: 26e9,
            sqlite_rows_written: 60e6,
            sqlite_stored_gb_months: 7.5,
            ..Usage::default()
        };
        // 1e9 rows x $0.001/M = $1.00; 10M rows x $1.00/M = $10.00; 2.5 GB-month x $0.20.
        for name in ["cloudflare-2026-08", "cloudflare-2026-01"] {
            assert_bill(
                &priced(&usage, &table(name)),
                &[
                    (SQLITE_ROWS_READ, "1.00"),
                    (SQLITE_ROWS_WRITTEN, "10.00"),
                    (SQLITE_STORAGE, "0.50"),
                ],
                "16.50",
            );
        }
    }

    #[test]
    fn sqlite_storage_is_free_before_2026_01_07_and_billed_from_then_on() {
        // The same month of SQLite usage, well beyond every allowance.
        let usage = Usage {
            sqlite_rows_read: 125e9,
            sqlite_rows_written: 250e6,
            sqlite_stored_gb_months: 105.0,
            ..Usage::default()
        };
        let sqlite = [SQLITE_ROWS_READ, SQLITE_ROWS_WRITTEN, SQLITE_STORAGE];
        // Until 2026-01-06: $0 (Cloudflare's changelog: only usage on and after 2026-01-07 is
        // charged), also before SQLite-backed objects existed.
        for name in ["cloudflare-2024-04", "cloudflare-2024-01"] {
            let bill = priced(&usage, &table(name));
            for line in sqlite {
                let l = bill.line(line).unwrap();
                assert_eq!(l.cost_usd, dec("0.00"), "{name} {line}");
                assert!(l.billable > Decimal::ZERO, "{name} {line}: usage is shown");
                let note = l.detail.as_deref().unwrap_or_default();
                assert!(
                    note.contains("not billed before 2026-01-07"),
                    "{name}: {note}"
                );
            }
            assert_eq!(bill.total_usd, dec("5.00"), "{name}");
        }
        // From 2026-01-07: 100e9 x $0.001/M = $100; 200M x $1/M = $200; 100 GB-month x $0.20.
        for name in ["cloudflare-2026-01", "cloudflare-2026-08"] {
            assert_bill(
                &priced(&usage, &table(name)),
                &[
                    (SQLITE_ROWS_READ, "100.00"),
                    (SQLITE_ROWS_WRITTEN, "200.00"),
                    (SQLITE_STORAGE, "20.00"),
                ],
                "325.00",
            );
        }
        // Compute lines are the same on both sides of the switch.
        let compute = do_usage(2_000_000.0, 1_000.0, 40_000_000.0, 5_000_000.0);
        let before = priced(&compute, &table("cloudflare-2024-04"));
        let after = priced(&compute, &table("cloudflare-2026-01"));
        assert_eq!(before.total_usd, after.total_usd);
        assert!(before.total_usd > dec("5.00"));
        // The storage line says how Cloudflare counts a GB-month.
        let storage = priced(&usage, &table("cloudflare-2026-01"));
        let note = storage
            .line(SQLITE_STORAGE)
            .unwrap()
            .detail
            .clone()
            .unwrap();
        assert!(note.contains("each day's peak"), "{note}");
        assert!(storage.render_text().contains("each day's peak"));
    }

    #[test]
    fn quantities_are_exact_decimals() {
        let usage = Usage {
            worker_cpu_ms: 30_000_000.0 + 0.1 + 0.2, // f64 noise
            do_active_seconds: 5e-324,               // below the 6 decimals kept: 0
            sqlite_stored_gb_months: MAX_QUANTITY,   // the largest priced: exact
            ..Usage::default()
        };
        let bill = priced(&usage, &table("cloudflare-2026-08"));
        assert_eq!(
            bill.line(WORKERS_CPU_TIME).unwrap().quantity,
            dec("30000000.3")
        );
        assert_eq!(bill.line(DO_DURATION).unwrap().quantity, Decimal::ZERO);
        let storage = bill.line(SQLITE_STORAGE).unwrap();
        assert_eq!(storage.quantity, dec("1000000000000000"));
        // (1e15 - 5) GB-month x $0.20 = $199,999,999,999,999.00, to the cent.
        assert_eq!(storage.cost_usd, dec("199999999999999.00"));
    }

    #[test]
    fn unpriceable_quantities_are_refused_naming_the_key_never_clamped() {
        // Every usage key, set to each bad value, is refused with that key's name.
        for key in Usage::KEYS {
            for (bad, says) in [
                (f64::NAN, "finite"),
                (f64::INFINITY, "finite"),
                (-5.0, "negative"),
                (1e308, "above the largest"),
                (MAX_QUANTITY * 1.000_001, "above the largest"),
            ] {
                let mut usage = Usage::default();
                *usage.get_mut(key).unwrap() = bad;
                let err = price(&usage, &table("cloudflare-2026-08")).unwrap_err();
                assert!(
                    matches!(err, PricingError::Quantity { key: k, .. } if k == key),
                    "{key} = {bad}: {err}"
                );
                let msg = err.to_string();
                assert!(msg.contains(key) && msg.contains(says), "{msg}");
                // Said once: the cause is in the message, not also the error's source (a
                // chain printer would repeat it).
                assert!(std::error::Error::source(&err).is_none(), "{msg}");
            }
        }
        assert_eq!(to_quantity(-0.0), Ok(Decimal::ZERO));
        assert_eq!(to_quantity(MAX_QUANTITY), Ok(dec("1000000000000000")));
    }

    #[test]
    fn unknown_table_names_the_known_ones() {
        let err = PriceTable::builtin("cloudflare-1999").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PricingError::UnknownTable { .. }));
        for name in PriceTable::names() {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn every_builtin_table_parses_and_names_its_source() {
        let all = PriceTable::all();
        assert_eq!(
            all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            [
                "cloudflare-2026-08",
                "cloudflare-2026-01",
                "cloudflare-2024-04",
                "cloudflare-2024-01",
                "seed-2024-12"
            ]
        );
        assert_eq!(all[0].name, PriceTable::DEFAULT);
        assert!(
            all[0].effective_to.is_none(),
            "the default is the current table"
        );
        for t in &all {
            assert_eq!(PriceTable::builtin(&t.name).unwrap(), *t);
            t.validate().unwrap();
            assert!(
                !t.title.is_empty() && !t.notes.trim().is_empty(),
                "{}",
                t.name
            );
            assert!(!t.source.is_empty(), "{}", t.name);
            if t.name.starts_with("cloudflare-") {
                assert!(
                    t.source
                        .iter()
                        .any(|s| s.starts_with("https://developers.cloudflare.com/")),
                    "{}",
                    t.name
                );
                assert_eq!(t.plan_minimum_usd, dec("5"));
                assert_eq!(t.gb_s_per_object_second, dec("0.128"));
            } else {
                assert!(t.source[0].starts_with("seeds/do-scale-design.ja.md"));
            }
            // A table written back out reads the same.
            let text = toml::to_string(t).unwrap();
            assert_eq!(PriceTable::from_toml_str(&text).unwrap(), *t);
        }
    }

    /// The Cloudflare tables, oldest first, with their first and last day numbers.
    fn cloudflare_periods() -> Vec<(String, i64, Option<i64>)> {
        let mut periods: Vec<_> = PriceTable::all()
            .into_iter()
            .filter(|t| t.name.starts_with("cloudflare-"))
            .map(|t| {
                let from = day_number(&t.effective_from).unwrap();
                let to = t.effective_to.as_deref().map(|d| day_number(d).unwrap());
                (t.name, from, to)
            })
            .collect();
        periods.sort_by_key(|p| p.1);
        periods
    }

    #[test]
    fn cloudflare_periods_follow_each_other_without_gap_or_overlap() {
        let periods = cloudflare_periods();
        assert_eq!(periods.len(), 4);
        for pair in periods.windows(2) {
            let (earlier, later) = (&pair[0], &pair[1]);
            assert_eq!(
                earlier.2.map(|to| to + 1),
                Some(later.1),
                "{} must end the day before {} starts",
                earlier.0,
                later.0
            );
        }
        // Only the newest is open-ended, and it is the default.
        let last = periods.last().unwrap();
        assert_eq!((last.0.as_str(), last.2), (PriceTable::DEFAULT, None));
        // Exactly one table applies on every day from the first to well past the last switch.
        let in_effect = |day: i64| -> Vec<&str> {
            periods
                .iter()
                .filter(|(_, from, to)| *from <= day && to.is_none_or(|to| day <= to))
                .map(|(name, _, _)| name.as_str())
                .collect()
        };
        for day in periods[0].1..periods[0].1 + 2000 {
            assert_eq!(in_effect(day).len(), 1, "day {day}: {:?}", in_effect(day));
        }
        // The SQLite switch: 6 January 2026 free, 7 January billed.
        let day = |s: &str| day_number(s).unwrap();
        assert_eq!(in_effect(day("2026-01-06")), ["cloudflare-2024-04"]);
        assert_eq!(in_effect(day("2026-01-07")), ["cloudflare-2026-01"]);
        assert_eq!(in_effect(day("2026-07-31")), ["cloudflare-2026-01"]);
        assert_eq!(in_effect(day("2026-08-01")), ["cloudflare-2026-08"]);
        assert_eq!(in_effect(day("2024-03-31")), ["cloudflare-2024-01"]);
        assert_eq!(in_effect(day("2024-04-01")), ["cloudflare-2024-04"]);
    }

    #[test]
    fn tables_billing_sqlite_cite_the_changelog_entry() {
        // Every Cloudflare table says where its SQLite lines come from: the changelog entry
        // that set 2026-01-07, with its title and date.
        for t in PriceTable::all() {
            if !t.name.starts_with("cloudflare-") {
                continue;
            }
            let entry = t
                .source
                .iter()
                .find(|s| s.contains("durable-objects-sqlite-storage-billing"))
                .unwrap_or_else(|| panic!("{} does not cite the changelog", t.name));
            assert!(entry.starts_with("https://developers.cloudflare.com/changelog/"));
            assert!(entry.contains("Billing for SQLite Storage") && entry.contains("2026-01-07"));
            let billed = t.sqlite_storage.unit_price_usd > Decimal::ZERO;
            assert_eq!(
                billed,
                day_number(&t.effective_from) >= day_number("2026-01-07"),
                "{}",
                t.name
            );
            assert_eq!(t.sqlite_rows_read.unit_price_usd > Decimal::ZERO, billed);
            assert_eq!(t.sqlite_rows_written.unit_price_usd > Decimal::ZERO, billed);
        }
    }

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2026-01-07"), Some(20_460));
        assert_eq!(
            day_number("2024-02-29").map(|d| d + 1),
            day_number("2024-03-01")
        );
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-07",
            "x",
        ] {
            assert_eq!(day_number(bad), None, "{bad}");
        }
        let mut t = table("cloudflare-2026-01");
        t.effective_to = Some("2026-02-30".into());
        assert!(t.validate().unwrap_err().to_string().contains("2026-02-30"));
    }

    #[test]
    fn invalid_tables_are_rejected() {
        let good = toml::to_string(&table("cloudflare-2026-08")).unwrap();
        let zero_ratio = good.replace(
            "websocket_message_ratio = \"20\"",
            "websocket_message_ratio = \"0\"",
        );
        assert_ne!(zero_ratio, good);
        assert!(matches!(
            PriceTable::from_toml_str(&zero_ratio),
            Err(PricingError::Invalid { .. })
        ));
        let unknown_key = format!("surprise = 1\n{good}");
        assert!(matches!(
            PriceTable::from_toml_str(&unknown_key),
            Err(PricingError::Parse { .. })
        ));
        let mut t = table("cloudflare-2026-08");
        t.do_duration.price_per = Decimal::ZERO;
        assert!(t.validate().is_err());
        // price() does not panic on it, and does not bill it as $0 either.
        let err = price(&do_usage(0.0, 0.0, 0.0, 1e9), &t).unwrap_err();
        assert!(
            matches!(
                err,
                PricingError::Arithmetic {
                    line: DO_DURATION,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn json_has_exactly_the_documented_keys_and_decimal_strings() {
        let bill = priced(
            &do_usage(0.0, 150_000.0, 72_000_000.0, 86_400_000.0),
            &table("cloudflare-2026-08"),
        );
        let v = serde_json::to_value(&bill).unwrap();
        let keys = |o: &serde_json::Value| {
            let mut k: Vec<_> = o.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), ["line_items", "pricing", "total_usd"]);
        for item in v["line_items"].as_array().unwrap() {
            assert_eq!(
                keys(item),
                [
                    "billable",
                    "cost_usd",
                    "included",
                    "name",
                    "price_per",
                    "quantity",
                    "unit",
                    "unit_price_usd"
                ]
            );
        }
        assert_eq!(v["pricing"], "cloudflare-2026-08");
        assert_eq!(v["total_usd"], "142.95");
        assert_eq!(v["line_items"][0]["cost_usd"], "5.00");
        let dur = &v["line_items"][4];
        assert_eq!(dur["name"], DO_DURATION);
        assert_eq!(dur["quantity"], "11059200");
        assert_eq!(dur["unit_price_usd"], "12.50");
        assert_eq!(dur["price_per"], "1000000");
        // And back.
        let back: Bill = serde_json::from_value(v).unwrap();
        assert_eq!(back.total_usd, bill.total_usd);
        assert_eq!(back.line_items.len(), bill.line_items.len());
    }

    #[test]
    fn text_rendering_is_aligned_and_complete() {
        let bill = priced(
            &Usage {
                worker_requests: 15_000_000.0,
                worker_cpu_ms: 105_000_000.0,
                ..do_usage(0.0, 10_000.0, 432_000_000.0, 4_320_000.0)
            },
            &table("cloudflare-2026-08"),
        );
        let text = bill.render_text();
        for l in &bill.line_items {
            assert!(text.contains(&l.name), "{text}");
        }
        assert!(text.contains("$0.30 / 1M requests"), "{text}");
        assert!(text.contains("$12.50 / 1M GB-s"), "{text}");
        assert!(text.contains("$0.20 / GB-month"), "{text}");
        assert!(text.contains("21,610,000"), "{text}");
        // Counts are shown whole, small quantities with their decimals.
        assert_eq!(
            fmt_number(Decimal::from_f64(55_042.372881).unwrap()),
            "55,042"
        );
        assert_eq!(fmt_number(Decimal::from_f64(78.414521).unwrap()), "78.41");
        assert_eq!(fmt_number(Decimal::from_f64(0.000123).unwrap()), "0.000123");
        assert!(
            text.contains("432,000,000 incoming messages / 20"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("Total") && l.ends_with("$23.65")),
            "{text}"
        );
        // Every table row ends in its cost at the same column.
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| bill.line_items.iter().any(|i| l.starts_with(&i.name)))
            .collect();
        assert_eq!(rows.len(), bill.line_items.len());
        let width = rows[0].chars().count();
        assert!(rows.iter().all(|r| r.chars().count() == width), "{text}");
        assert_eq!(bill.total_f64(), 23.65);
        // The seed table's price per 10M GB-s reads as the seed wrote it.
        let seed = priced(&Usage::default(), &table("seed-2024-12")).render_text();
        assert!(seed.contains("$12.50 / 10M GB-s"), "{seed}");
    }
}
