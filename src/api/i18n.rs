//! The page's languages: English and those of the control panel's
//! customer guides — Dutch, French, Polish, Czech — chosen by
//! `Accept-Language` (RFC 9110 §12.5.4), and every label in each. The
//! labels the guides name (the page's title, "Service status", "Error
//! report to", "Change recipient", "Mails in error", the three totals, the
//! history graph, the three buttons, "Confirm", and the descriptions of
//! the buttons) are the guides' own words in that language (docs/api.md,
//! "Languages"); the rest is ours.

/// A language of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En = 0,
    Nl = 1,
    Fr = 2,
    Pl = 3,
    Cs = 4,
}

impl Lang {
    pub const ALL: [Lang; 5] = [Lang::En, Lang::Nl, Lang::Fr, Lang::Pl, Lang::Cs];

    /// The BCP 47 tag (`<html lang>`, `Content-Language`).
    pub fn code(self) -> &'static str {
        ["en", "nl", "fr", "pl", "cs"][self as usize]
    }

    fn of(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or("").trim();
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }
}

/// The language to answer in: the supported one the browser ranks highest
/// (by `q`, then by order), else English. `*` and unknown tags do not
/// count; `q=0` means "not this one".
pub fn pick(accept_language: Option<&str>) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.unwrap_or("").split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if let Some(lang) = Lang::of(tag)
            && q > 0.0
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// Every label: key, then English, Dutch, French, Polish, Czech. `{hold}`
/// stands for how long held mail is kept (`queue.hold_max_age`).
pub const LABELS: &[(&str, [&str; 5])] = &[
    // The guides' words.
    (
        "title",
        [
            "E-mail scripts",
            "E-mailscripts",
            "Scripts emails",
            "Skrypty e-mail",
            "E-mailové skripty",
        ],
    ),
    (
        "state",
        [
            "Service status",
            "Service status",
            "État du service",
            "Status usługi",
            "Stav služby",
        ],
    ),
    (
        "report_to",
        [
            "Error report to",
            "Stuur foutmeldingen naar",
            "Rapport d'erreurs à",
            "Raporty o błędach",
            "Chyby hlásit na",
        ],
    ),
    (
        "change_recipient",
        [
            "Change recipient",
            "Ontvanger wijzigen",
            "Changer le destinataire",
            "Zmień odbiorcę",
            "Změna příjemce",
        ],
    ),
    (
        "mails_in_error",
        [
            "Mails in error",
            "E-mails met foutmeldingen",
            "Emails en erreur",
            "Błędy wysyłki e-maili",
            "Problémy s e-maily",
        ],
    ),
    (
        "sent_total",
        [
            "Total e-mails sent",
            "Totaal aantal verzonden e-mails",
            "Total des e-mails envoyés",
            "Łączna liczba wysłanych wiadomości",
            "Celkový počet odeslaných e-mailů",
        ],
    ),
    (
        "sent_today",
        [
            "E-mails sent today",
            "Vandaag verzonden e-mails",
            "E-mails envoyés aujourd'hui",
            "Wiadomości e-mail wysłane dzisiaj",
            "E-maily odeslané dnes",
        ],
    ),
    (
        "error_total",
        [
            "Total e-mails in error",
            "Totaal aantal e-mails met foutmeldingen",
            "Total des e-mails en erreur",
            "Łączna liczba zwróconych wiadomości e-mail",
            "Celkový počet neodeslaných e-mailů",
        ],
    ),
    (
        "history_graph",
        [
            "History of sent e-mails",
            "Log van verzonden e-mails",
            "Historique des e-mails envoyés",
            "Historia wysłanych wiadomości e-mail",
            "Historie odeslaných e-mailů",
        ],
    ),
    (
        "block",
        [
            "Block sending",
            "Verzenden blokkeren",
            "Bloquer l'envoi",
            "Blokuj wysyłkę",
            "Blokace odesílání e-mailů",
        ],
    ),
    (
        "unblock",
        [
            "Unblock sending",
            "Blokkering opheffen",
            "Débloquer l'envoi",
            "Odblokuj wysyłkę",
            "Odblokovat posílání e-mailů",
        ],
    ),
    (
        "purge",
        [
            "Purge e-mails",
            "E-mails opschonen",
            "Purger les e-mails",
            "Usuń wiadomości e-mail",
            "Vyčistit e-maily",
        ],
    ),
    (
        "confirm",
        ["Confirm", "Bevestigen", "Valider", "Zatwierdź", "Potvrdit"],
    ),
    (
        "request_sent",
        [
            "Your request has been sent.",
            "Uw verzoek is verzonden.",
            "Votre demande a été envoyée.",
            "Twoje zlecenie zostało wysłane.",
            "Váš požadavek byl odeslán.",
        ],
    ),
    (
        "block_help",
        [
            "Blocks the automated e-mails of your hosting: e-mails your scripts generate after the block are not sent, but kept in a queue for at most {hold}.",
            "Blokkeert automatische e-mails van uw webhosting. Zodra u het verzenden hebt geblokkeerd, worden door het script gegenereerde e-mails niet verzonden en worden deze maximaal {hold} in een wachtrij opgeslagen.",
            "Permet de bloquer la distribution des envois d'e-mails automatisés de votre hébergement web. Les e-mails générés par vos scripts après le blocage ne seront pas envoyés, mais conservés dans une file d'attente pendant {hold} maximum.",
            "Pozwala zablokować dystrybucję automatycznych wiadomości e-mail wysyłanych z Twojego hostingu. Wiadomości e-mail generowane przez Twoje skrypty po zablokowaniu będą czekały w kolejce przez {hold}.",
            "Umožňuje zablokovat distribuci automatických e-mailů odesílaných z Vašeho webhostingového řešení. E-maily budou zařazeny do fronty na dobu {hold}, ale žádný z nich nebude vymazán.",
        ],
    ),
    (
        "unblock_help",
        [
            "Unblocks the automated e-mails of your hosting. The e-mails waiting in the queue are sent to their recipients too.",
            "Heft de blokkering van geautomatiseerde e-mails van uw webhosting op. Dit zorgt er ook voor dat e-mails die zijn opgeslagen in de openstaande wachtrij worden verzonden naar ontvangers.",
            "Permet de débloquer l'envoi des e-mails automatisés de votre hébergement web. Les e-mails présents dans la file d'attente seront également remis en distribution.",
            "Pozwala odblokować wysyłkę automatycznych wiadomości e-mail z Twojego hostingu. Wiadomości oczekujące w kolejce zostaną ponownie przydzielone do dystrybucji.",
            "Umožňuje odblokovat odesílání automatických e-mailů z Vašeho webhostingového řešení. E-maily zařazené do fronty budou opětovně zařazeny do distribuce.",
        ],
    ),
    (
        "purge_help",
        [
            "Deletes the e-mails waiting in the queue and unblocks sending.",
            "Verwijdert de e-mails die zijn opgeslagen in de openstaande wachtrij en deblokkeert de e-mails die worden verzonden.",
            "Permet d'effacer les e-mails présents dans la file d'attente et de débloquer leur envoi.",
            "Pozwala usunąć wiadomości e-mail oczekujące w kolejce i odblokować ich wysyłkę.",
            "Umožňuje vymazat frontu e-mailů a odblokovat jejich odesílání.",
        ],
    ),
    // Ours.
    (
        "unavailable",
        [
            "Not available in the current service status.",
            "Niet beschikbaar in de huidige servicestatus.",
            "Indisponible dans l'état actuel du service.",
            "Niedostępne przy obecnym statusie usługi.",
            "V aktuálním stavu služby nedostupné.",
        ],
    ),
    (
        "cancel",
        ["Cancel", "Annuleren", "Annuler", "Anuluj", "Zrušit"],
    ),
    (
        "state_ok",
        [
            "Sending",
            "Ingeschakeld",
            "Envoi actif",
            "Wysyłka aktywna",
            "Odesílání aktivní",
        ],
    ),
    (
        "state_ko",
        [
            "Blocked",
            "Uitgeschakeld",
            "Envoi bloqué",
            "Wysyłka zablokowana",
            "Odesílání zablokováno",
        ],
    ),
    (
        "state_bounce",
        [
            "Blocked: too many e-mails in error",
            "Uitgeschakeld: te veel e-mails met foutmeldingen",
            "Bloqué : trop d'e-mails en erreur",
            "Zablokowane: zbyt wiele zwróconych wiadomości",
            "Zablokováno: příliš mnoho neodeslaných e-mailů",
        ],
    ),
    (
        "state_spam",
        [
            "Blocked: abuse (spam)",
            "Uitgeschakeld: misbruik (spam)",
            "Bloqué : abus (spam)",
            "Zablokowane: nadużycie (spam)",
            "Zablokováno: zneužití (spam)",
        ],
    ),
    (
        "state_force",
        [
            "Sending (forced after errors)",
            "Ingeschakeld (geforceerd na fouten)",
            "Envoi actif (forcé après erreurs)",
            "Wysyłka aktywna (wymuszona po błędach)",
            "Odesílání aktivní (vynuceno po chybách)",
        ],
    ),
    (
        "state_purging",
        [
            "Purging",
            "Vrijgeven",
            "Purge en cours",
            "Usuwanie w toku",
            "Probíhá čištění",
        ],
    ),
    ("since", ["since", "sinds", "depuis", "od", "od"]),
    (
        "not_set",
        [
            "not set",
            "niet ingesteld",
            "non défini",
            "nie ustawiono",
            "nenastaveno",
        ],
    ),
    (
        "new_recipient",
        [
            "New recipient",
            "Nieuwe ontvanger",
            "Nouveau destinataire",
            "Nowy odbiorca",
            "Nový příjemce",
        ],
    ),
    (
        "per_day",
        ["per day", "per dag", "par jour", "dziennie", "za den"],
    ),
    (
        "held_title",
        [
            "Held e-mails",
            "Vastgehouden e-mails",
            "E-mails retenus",
            "Wstrzymane wiadomości e-mail",
            "Zadržené e-maily",
        ],
    ),
    (
        "held_count",
        [
            "Held now",
            "Nu vastgehouden",
            "Retenus actuellement",
            "Obecnie wstrzymane",
            "Nyní zadrženo",
        ],
    ),
    (
        "held_oldest",
        [
            "Oldest",
            "Oudste",
            "Le plus ancien",
            "Najstarsza",
            "Nejstarší",
        ],
    ),
    (
        "held_left",
        [
            "Deleted in",
            "Verwijderd over",
            "Supprimé dans",
            "Usunięcie za",
            "Smazání za",
        ],
    ),
    (
        "held_none",
        [
            "No e-mail is held.",
            "Er worden geen e-mails vastgehouden.",
            "Aucun e-mail n'est retenu.",
            "Żadna wiadomość nie jest wstrzymana.",
            "Žádný e-mail není zadržen.",
        ],
    ),
    (
        "scripts",
        [
            "Sending scripts",
            "Verzendende scripts",
            "Scripts d'envoi",
            "Skrypty wysyłające",
            "Odesílající skripty",
        ],
    ),
    ("script", ["Script", "Script", "Script", "Skrypt", "Skript"]),
    (
        "no_script",
        [
            "(none recorded)",
            "(niet vastgelegd)",
            "(non enregistré)",
            "(nie zapisano)",
            "(nezaznamenáno)",
        ],
    ),
    (
        "count",
        ["E-mails", "E-mails", "E-mails", "Wiadomości", "E-maily"],
    ),
    (
        "history_title",
        [
            "State history",
            "Statusgeschiedenis",
            "Historique de l'état",
            "Historia statusu",
            "Historie stavu",
        ],
    ),
    ("date", ["Date", "Datum", "Date", "Data", "Datum"]),
    ("from_state", ["From", "Van", "De", "Z", "Z"]),
    ("to_state", ["To", "Naar", "À", "Na", "Na"]),
    ("reason", ["Reason", "Reden", "Motif", "Powód", "Důvod"]),
    ("by", ["By", "Door", "Par", "Przez", "Kým"]),
    ("note", ["Note", "Notitie", "Note", "Notatka", "Poznámka"]),
    (
        "history_none",
        [
            "No state change yet.",
            "Nog geen statuswijziging.",
            "Aucun changement d'état.",
            "Brak zmian statusu.",
            "Zatím žádná změna stavu.",
        ],
    ),
    (
        "recipient",
        [
            "Recipient",
            "Ontvanger",
            "Destinataire",
            "Odbiorca",
            "Příjemce",
        ],
    ),
    (
        "answer",
        [
            "Server answer",
            "Antwoord van de server",
            "Réponse du serveur",
            "Odpowiedź serwera",
            "Odpověď serveru",
        ],
    ),
    (
        "errors_none",
        [
            "No e-mail in error.",
            "Geen e-mails met foutmeldingen.",
            "Aucun e-mail en erreur.",
            "Brak błędów wysyłki.",
            "Žádné problémy s e-maily.",
        ],
    ),
    ("day", ["Day", "Dag", "Jour", "Dzień", "Den"]),
    (
        "sent",
        ["Sent", "Verzonden", "Envoyés", "Wysłane", "Odesláno"],
    ),
    (
        "chart_label",
        [
            "E-mails sent per day, last {days} days; most in one day: {max}",
            "Verzonden e-mails per dag, laatste {days} dagen; hoogste op één dag: {max}",
            "E-mails envoyés par jour, {days} derniers jours ; maximum en un jour : {max}",
            "Wiadomości wysłane dziennie, ostatnie {days} dni; najwięcej w ciągu dnia: {max}",
            "E-maily odeslané za den, posledních {days} dní; nejvíce za den: {max}",
        ],
    ),
    (
        "as_table",
        [
            "Show as a table",
            "Als tabel tonen",
            "Afficher sous forme de tableau",
            "Pokaż jako tabelę",
            "Zobrazit jako tabulku",
        ],
    ),
    (
        "refresh",
        ["Refresh", "Vernieuwen", "Actualiser", "Odśwież", "Obnovit"],
    ),
    (
        "sign_in",
        [
            "Sign in",
            "Aanmelden",
            "Se connecter",
            "Zaloguj się",
            "Přihlásit se",
        ],
    ),
    (
        "sign_out",
        [
            "Sign out",
            "Afmelden",
            "Se déconnecter",
            "Wyloguj się",
            "Odhlásit se",
        ],
    ),
    (
        "token",
        [
            "API token",
            "API-token",
            "Jeton d'API",
            "Token API",
            "API token",
        ],
    ),
    (
        "token_help",
        [
            "The token your hosting provider gave you (mailq-ctl api-token add).",
            "Het token van uw hostingprovider (mailq-ctl api-token add).",
            "Le jeton fourni par votre hébergeur (mailq-ctl api-token add).",
            "Token od dostawcy hostingu (mailq-ctl api-token add).",
            "Token od vašeho poskytovatele hostingu (mailq-ctl api-token add).",
        ],
    ),
    ("account", ["Account", "Account", "Compte", "Konto", "Účet"]),
    (
        "search",
        [
            "Search accounts",
            "Accounts zoeken",
            "Rechercher un compte",
            "Szukaj konta",
            "Hledat účet",
        ],
    ),
    ("open", ["Open", "Openen", "Ouvrir", "Otwórz", "Otevřít"]),
    (
        "other_account",
        [
            "Other account",
            "Ander account",
            "Autre compte",
            "Inne konto",
            "Jiný účet",
        ],
    ),
    (
        "skip",
        [
            "Skip to the content",
            "Naar de inhoud",
            "Aller au contenu",
            "Przejdź do treści",
            "Přejít na obsah",
        ],
    ),
    (
        "loading",
        [
            "Loading…",
            "Laden…",
            "Chargement…",
            "Ładowanie…",
            "Načítání…",
        ],
    ),
    (
        "failed",
        [
            "Failed:",
            "Mislukt:",
            "Échec :",
            "Niepowodzenie:",
            "Selhalo:",
        ],
    ),
    ("show", ["Show", "Tonen", "Afficher", "Pokaż", "Zobrazit"]),
    ("hide", ["Hide", "Verbergen", "Masquer", "Ukryj", "Skrýt"]),
];

/// The label `key` in `lang` (the key itself if there is none: a test
/// keeps that from happening).
pub fn label(lang: Lang, key: &str) -> &'static str {
    LABELS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, t)| t[lang as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(pick(None), Lang::En);
        assert_eq!(pick(Some("fr-FR,fr;q=0.9,en;q=0.8")), Lang::Fr);
        assert_eq!(pick(Some("de-DE, nl;q=0.5, en;q=0.4")), Lang::Nl);
        assert_eq!(pick(Some("en;q=0.2, cs;q=0.9")), Lang::Cs);
        assert_eq!(pick(Some("PL")), Lang::Pl);
        assert_eq!(pick(Some("de, *")), Lang::En);
        assert_eq!(pick(Some("fr;q=0, pl;q=0.1")), Lang::Pl);
        assert_eq!(pick(Some(";;;,q=,=")), Lang::En);
        assert_eq!(pick(Some("nl, fr")), Lang::Nl, "ties: the first");
    }

    #[test]
    fn every_label_exists_once_in_every_language() {
        for (i, (k, t)) in LABELS.iter().enumerate() {
            assert!(LABELS[i + 1..].iter().all(|(o, _)| o != k), "{k} twice");
            for (l, text) in t.iter().enumerate() {
                assert!(!text.is_empty(), "{k} in language {l}");
            }
            let holes = |s: &str| s.matches('{').count();
            assert!(
                t.iter().all(|s| holes(s) == holes(t[0])),
                "{k}: placeholders"
            );
        }
        assert_eq!(label(Lang::Fr, "block"), "Bloquer l'envoi");
        assert_eq!(label(Lang::Nl, "request_sent"), "Uw verzoek is verzonden.");
    }
}
