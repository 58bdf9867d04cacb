//! Every text of the widget, in German (the default) and English.

use std::collections::BTreeMap;

use finx_domain::values::Language;

/// `(key, German, English)`.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Konto verbinden", "Connect your account"),
    ("cancel", "Abbrechen", "Cancel"),
    ("continue", "Weiter", "Continue"),
    (
        "secured",
        "Ihre Zugangsdaten werden verschlüsselt an Ihre Bank übertragen und nicht gespeichert.",
        "Your credentials go encrypted to your bank and are not stored.",
    ),
    ("step_bank", "Bank auswählen", "Choose your bank"),
    (
        "search_label",
        "Bank suchen (Name, BIC oder Bankleitzahl)",
        "Search for your bank (name, BIC or bank code)",
    ),
    ("search", "Suchen", "Search"),
    (
        "no_banks",
        "Keine Bank gefunden. Versuchen Sie einen anderen Suchbegriff.",
        "No bank found. Try another search.",
    ),
    ("choose", "Auswählen", "Choose"),
    ("bank_code", "BLZ", "Bank code"),
    (
        "unknown_bank_note",
        "Die Bank zu der angegebenen IBAN können wir nicht automatisch erkennen. Bitte wählen Sie Ihre Bank aus.",
        "We could not recognise the bank of the IBAN given. Please choose your bank.",
    ),
    (
        "step_login",
        "Bei Ihrer Bank anmelden",
        "Log in to your bank",
    ),
    ("login", "Anmelden", "Log in"),
    ("other_bank", "Andere Bank wählen", "Choose another bank"),
    (
        "wrong_credentials",
        "Anmeldename oder PIN ist falsch.",
        "Login name or PIN is wrong.",
    ),
    ("attempts_left", "Verbleibende Versuche:", "Attempts left:"),
    (
        "no_attempts",
        "Keine Versuche mehr übrig.",
        "No attempts left.",
    ),
    ("step_tan", "Freigabe mit TAN", "Confirm with a TAN"),
    (
        "step_method",
        "Freigabeverfahren wählen",
        "Choose how to confirm",
    ),
    (
        "method_hint",
        "Wie möchten Sie den Zugriff freigeben?",
        "How do you want to confirm the access?",
    ),
    (
        "image_alt",
        "Grafik zum Einlesen mit Ihrer App",
        "Image to scan with your app",
    ),
    (
        "flicker_label",
        "Flickercode für Ihren TAN-Generator:",
        "Flicker code for your TAN generator:",
    ),
    (
        "step_redirect",
        "Weiter bei Ihrer Bank",
        "Continue at your bank",
    ),
    (
        "redirect_text",
        "Sie melden sich auf den Seiten von {bank} an und geben den Zugriff dort frei. Danach kommen Sie hierher zurück.",
        "You log in on the pages of {bank} and confirm the access there. Then you come back here.",
    ),
    ("redirect_button", "Weiter zu {bank}", "Continue to {bank}"),
    (
        "redirect_again",
        "Die Freigabe bei Ihrer Bank ist noch nicht abgeschlossen.",
        "The confirmation at your bank is not finished yet.",
    ),
    (
        "step_decoupled",
        "In Ihrer Banking-App freigeben",
        "Confirm in your banking app",
    ),
    (
        "decoupled_text",
        "Öffnen Sie die App Ihrer Bank und geben Sie den Zugriff frei. Diese Seite aktualisiert sich von selbst.",
        "Open your bank's app and confirm the access. This page updates itself.",
    ),
    ("decoupled_check", "Jetzt prüfen", "Check now"),
    (
        "step_waiting",
        "Ihre Bank antwortet",
        "Your bank is answering",
    ),
    (
        "waiting_text",
        "Einen Moment, Ihre Bank bearbeitet Ihre Eingabe.",
        "One moment, your bank is processing your entry.",
    ),
    (
        "invalid_return",
        "Diese Rückkehr von der Bank gehört nicht zu diesem Vorgang oder wurde schon verwendet.",
        "This return from the bank does not belong to this process or was used already.",
    ),
    ("tan_method", "Verfahren:", "Method:"),
    ("tan_label", "TAN", "TAN"),
    ("confirm", "Bestätigen", "Confirm"),
    ("wrong_tan", "Die TAN ist falsch.", "The TAN is wrong."),
    ("step_accounts", "Konten auswählen", "Choose accounts"),
    (
        "accounts_hint_multi",
        "Wählen Sie die Konten, deren Daten Sie teilen möchten.",
        "Choose the accounts whose data you want to share.",
    ),
    (
        "verify_note",
        "Die App prüft, ob Sie Inhaber:in des gewählten Kontos sind: Sie erfährt den Namen, den Ihre Bank als Kontoinhaber führt.",
        "The app checks that you hold the account you choose: it learns the holder's name your bank keeps for it.",
    ),
    (
        "accounts_hint_single",
        "Wählen Sie das Konto, dessen Daten Sie teilen möchten.",
        "Choose the account whose data you want to share.",
    ),
    ("share", "Daten teilen", "Share data"),
    (
        "choose_one",
        "Bitte wählen Sie mindestens ein Konto.",
        "Please choose at least one account.",
    ),
    (
        "step_sync",
        "Ihre Daten werden abgerufen",
        "Fetching your data",
    ),
    (
        "sync_text",
        "Wir rufen die Umsätze der letzten {days} Tage von Ihrer Bank ab. Das dauert nur einen Moment.",
        "We are fetching the last {days} days of transactions from your bank. This takes a moment.",
    ),
    ("sync_button", "Daten abrufen", "Fetch data"),
    ("done_title", "Fertig", "Done"),
    (
        "done_text",
        "Ihre Konten sind verbunden. Sie werden zurückgeleitet.",
        "Your accounts are connected. You are being sent back.",
    ),
    (
        "back_to_app",
        "Zurück zur Anwendung",
        "Back to the application",
    ),
    (
        "finished_text",
        "Dieser Vorgang ist abgeschlossen. Sie können dieses Fenster schließen.",
        "This process is finished. You can close this window.",
    ),
    (
        "cancelled_text",
        "Sie haben den Vorgang abgebrochen.",
        "You cancelled the process.",
    ),
    (
        "failed_title",
        "Das hat leider nicht geklappt",
        "That did not work",
    ),
    (
        "failed_login_failed",
        "Die Anmeldung ist dreimal fehlgeschlagen.",
        "The login failed three times.",
    ),
    (
        "failed_account_locked",
        "Ihr Zugang ist bei der Bank gesperrt. Bitte wenden Sie sich an Ihre Bank.",
        "Your access is locked at the bank. Please contact your bank.",
    ),
    (
        "failed_bank_unavailable",
        "Ihre Bank ist gerade nicht erreichbar. Bitte versuchen Sie es später erneut.",
        "Your bank cannot be reached right now. Please try again later.",
    ),
    (
        "failed_sca_failed",
        "Die Freigabe ist dreimal fehlgeschlagen.",
        "The confirmation failed three times.",
    ),
    (
        "failed_sca_rejected",
        "Die Freigabe wurde abgelehnt.",
        "The confirmation was declined.",
    ),
    (
        "failed_sca_expired",
        "Die Freigabe bei Ihrer Bank ist abgelaufen. Bitte starten Sie den Vorgang neu.",
        "The confirmation at your bank expired. Please start again.",
    ),
    (
        "failed_no_accounts",
        "Bei dieser Bank wurden keine passenden Konten gefunden.",
        "No suitable accounts were found at this bank.",
    ),
    (
        "failed_sync_failed",
        "Ihre Daten konnten nicht abgerufen werden.",
        "Your data could not be fetched.",
    ),
    (
        "failed_link_expired",
        "Dieser Link ist abgelaufen. Bitte starten Sie den Vorgang in der Anwendung neu.",
        "This link has expired. Please start again from the application.",
    ),
    (
        "invalid_link",
        "Dieser Link ist ungültig.",
        "This link is invalid.",
    ),
    (
        "busy",
        "Ihre letzte Eingabe wird noch bearbeitet. Bitte versuchen Sie es erneut.",
        "Your last entry is still being processed. Please try again.",
    ),
    (
        "in_use_elsewhere",
        "Dieser Link wird bereits in einem anderen Browser verwendet. Aus Sicherheitsgründen kann er nur dort fortgesetzt werden. Bitte starten Sie den Vorgang in der Anwendung neu.",
        "This link is already in use in another browser. For your security it can only be continued there. Please start again from the application.",
    ),
    (
        "cookies_required",
        "Für diesen Schritt braucht Ihr Browser ein Cookie dieser Seite. Bitte erlauben Sie Cookies (in einem eingebetteten Fenster: öffnen Sie den Link in einem eigenen Fenster) und versuchen Sie es erneut.",
        "This step needs your browser to keep a cookie of this page. Please allow cookies (in an embedded window: open the link in a window of its own) and try again.",
    ),
    ("error_title", "Fehler", "Error"),
    ("powered", "Bereitgestellt von finX", "Provided by finX"),
];

/// The texts in `language`, by key.
#[must_use]
pub(crate) fn texts(language: Language) -> BTreeMap<&'static str, &'static str> {
    TEXTS
        .iter()
        .map(|(k, de, en)| (*k, if language == Language::En { *en } else { *de }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_exists_in_both_languages_and_differs_where_it_should() {
        let mut keys = std::collections::BTreeSet::new();
        for (k, de, en) in TEXTS {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!de.is_empty() && !en.is_empty(), "{k}");
        }
        let differing = TEXTS.iter().filter(|(_, de, en)| de != en).count();
        assert!(
            differing > TEXTS.len() - 3,
            "nearly every text is translated"
        );
        assert_eq!(texts(Language::En)["cancel"], "Cancel");
        assert_eq!(texts(Language::De)["cancel"], "Abbrechen");
    }
}
