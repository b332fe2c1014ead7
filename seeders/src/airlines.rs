//! [`AirlinesTableSeeder`]: fifty-eight real airlines with their IATA and ICAO codes.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, OnConflict, Query};
use tenancy_core::{BoxError, Seeder, TenantContext};

/// (name, IATA, ICAO, country)
const AIRLINES: &[(&str, &str, &str, &str)] = &[
    ("American Airlines", "AA", "AAL", "US"),
    ("Delta Air Lines", "DL", "DAL", "US"),
    ("United Airlines", "UA", "UAL", "US"),
    ("Southwest Airlines", "WN", "SWA", "US"),
    ("Alaska Airlines", "AS", "ASA", "US"),
    ("JetBlue Airways", "B6", "JBU", "US"),
    ("Air Canada", "AC", "ACA", "CA"),
    ("WestJet", "WS", "WJA", "CA"),
    ("Aeroméxico", "AM", "AMX", "MX"),
    ("LATAM Airlines", "LA", "LAN", "CL"),
    ("Avianca", "AV", "AVA", "CO"),
    ("Azul Brazilian Airlines", "AD", "AZU", "BR"),
    ("British Airways", "BA", "BAW", "GB"),
    ("easyJet", "U2", "EZY", "GB"),
    ("Virgin Atlantic", "VS", "VIR", "GB"),
    ("Lufthansa", "LH", "DLH", "DE"),
    ("Eurowings", "EW", "EWG", "DE"),
    ("Air France", "AF", "AFR", "FR"),
    ("KLM Royal Dutch Airlines", "KL", "KLM", "NL"),
    ("Iberia", "IB", "IBE", "ES"),
    ("Vueling", "VY", "VLG", "ES"),
    ("Ryanair", "FR", "RYR", "IE"),
    ("Aer Lingus", "EI", "EIN", "IE"),
    ("ITA Airways", "AZ", "ITY", "IT"),
    ("Swiss International Air Lines", "LX", "SWR", "CH"),
    ("Austrian Airlines", "OS", "AUA", "AT"),
    ("Scandinavian Airlines", "SK", "SAS", "SE"),
    ("Finnair", "AY", "FIN", "FI"),
    ("LOT Polish Airlines", "LO", "LOT", "PL"),
    ("TAP Air Portugal", "TP", "TAP", "PT"),
    ("Turkish Airlines", "TK", "THY", "TR"),
    ("Emirates", "EK", "UAE", "AE"),
    ("Etihad Airways", "EY", "ETD", "AE"),
    ("Qatar Airways", "QR", "QTR", "QA"),
    ("Saudia", "SV", "SVA", "SA"),
    ("EgyptAir", "MS", "MSR", "EG"),
    ("Ethiopian Airlines", "ET", "ETH", "ET"),
    ("Kenya Airways", "KQ", "KQA", "KE"),
    ("South African Airways", "SA", "SAA", "ZA"),
    ("Royal Air Maroc", "AT", "RAM", "MA"),
    ("Air India", "AI", "AIC", "IN"),
    ("IndiGo", "6E", "IGO", "IN"),
    ("Singapore Airlines", "SQ", "SIA", "SG"),
    ("Cathay Pacific", "CX", "CPA", "HK"),
    ("Japan Airlines", "JL", "JAL", "JP"),
    ("All Nippon Airways", "NH", "ANA", "JP"),
    ("Korean Air", "KE", "KAL", "KR"),
    ("Air China", "CA", "CCA", "CN"),
    ("China Eastern Airlines", "MU", "CES", "CN"),
    ("China Southern Airlines", "CZ", "CSN", "CN"),
    ("Thai Airways", "TG", "THA", "TH"),
    ("Vietnam Airlines", "VN", "HVN", "VN"),
    ("Garuda Indonesia", "GA", "GIA", "ID"),
    ("Malaysia Airlines", "MH", "MAS", "MY"),
    ("Philippine Airlines", "PR", "PAL", "PH"),
    ("Qantas", "QF", "QFA", "AU"),
    ("Virgin Australia", "VA", "VOZ", "AU"),
    ("Air New Zealand", "NZ", "ANZ", "NZ"),
];

/// Major airlines of every continent.
pub struct AirlinesTableSeeder;

#[async_trait::async_trait]
impl Seeder for AirlinesTableSeeder {
    fn name(&self) -> &str {
        "AirlinesTableSeeder"
    }

    fn description(&self) -> &str {
        "58 airlines with IATA and ICAO codes (needs countries)"
    }

    async fn run(&self, ctx: &TenantContext) -> Result<(), BoxError> {
        let countries = crate::country_ids(ctx, self.name()).await?;
        let mut insert = Query::insert()
            .into_table(Alias::new("airlines"))
            .columns([Alias::new("name"), Alias::new("iata"), Alias::new("icao"), Alias::new("country_id")])
            .on_conflict(OnConflict::column(Alias::new("icao")).do_nothing_on([Alias::new("icao")]).to_owned())
            .to_owned();
        for (name, iata, icao, country) in AIRLINES {
            let country_id =
                countries.get(*country).ok_or_else(|| format!("country `{country}` of airline `{name}` is not in the countries table"))?;
            insert.values_panic([(*name).into(), (*iata).into(), (*icao).into(), (*country_id).into()]);
        }
        ctx.db().execute(&insert).await?;
        Ok(())
    }
}
