//! [`AirportsTableSeeder`]: 50,000+ airports, inserted in batches with progress.
//!
//! The rows are synthetic but deterministic (no airport data set can be fetched at build time):
//! 201 airfields per country, each with a stable ident, name and position, so a second run finds
//! every row already there.

use sea_orm::sea_query::{Alias, OnConflict, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};
use tenancy_core::{BoxError, Seeder, TenantContext};

/// Airfields per country: 249 × 201 = 50,049 rows.
const PER_COUNTRY: usize = 201;
/// Rows per INSERT: 8 values each stays far below every backend's bind-parameter limit.
const BATCH: usize = 500;

/// A large table, to show batching and progress.
pub struct AirportsTableSeeder;

#[async_trait::async_trait]
impl Seeder for AirportsTableSeeder {
    fn name(&self) -> &str {
        "AirportsTableSeeder"
    }

    fn description(&self) -> &str {
        "50,049 airports in batches of 500, with progress (needs countries)"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let mut countries: Vec<(String, i32)> = crate::country_ids(ctx, self.name()).await?.into_iter().collect();
        countries.sort();
        let rows: Vec<Airport> =
            countries.iter().flat_map(|(code, id)| (1..=PER_COUNTRY).map(move |n| Airport::new(code, *id, n))).collect();
        let progress = ctx.progress(rows.len() as u64);
        // One transaction: one commit for the whole table instead of one per batch.
        let txn = ctx.db().begin().await?;
        for batch in rows.chunks(BATCH) {
            let mut insert = Query::insert()
                .into_table(Alias::new("airports"))
                .columns(["ident", "name", "municipality", "iata", "country_id", "latitude", "longitude"].map(Alias::new))
                .on_conflict(OnConflict::column(Alias::new("ident")).do_nothing_on([Alias::new("ident")]).to_owned())
                .to_owned();
            for airport in batch {
                insert.values_panic([
                    airport.ident.clone().into(),
                    airport.name.clone().into(),
                    airport.municipality.clone().into(),
                    airport.iata.clone().into(),
                    airport.country_id.into(),
                    airport.latitude.into(),
                    airport.longitude.into(),
                ]);
            }
            txn.execute(&insert).await?;
            progress.advance(batch.len() as u64);
        }
        txn.commit().await?;
        Ok(())
    }
}

struct Airport {
    ident: String,
    name: String,
    municipality: String,
    iata: Option<String>,
    country_id: i32,
    latitude: f64,
    longitude: f64,
}

impl Airport {
    fn new(country: &str, country_id: i32, n: usize) -> Self {
        // A small deterministic hash spreads positions over the globe.
        let seed = country.bytes().fold(n as u64 * 2_654_435_761, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let letters = |shift: u32| (b'A' + ((seed >> shift) % 26) as u8) as char;
        Self {
            ident: format!("{country}{n:04}"),
            name: format!("{country} Airfield {n}"),
            municipality: format!("{country} Town {}", n % 37 + 1),
            // Every fourth airfield has an IATA code, as in real data most do not.
            iata: n.is_multiple_of(4).then(|| format!("{}{}{}", letters(3), letters(11), letters(19))),
            country_id,
            latitude: ((seed % 180_000) as f64 / 1000.0) - 90.0,
            longitude: (((seed >> 20) % 360_000) as f64 / 1000.0) - 180.0,
        }
    }
}
