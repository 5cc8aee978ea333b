"""What Holdfast tells people and systems: emails and text messages rendered per locale,
calendar invitations, signed webhook bodies, and the guard on webhook targets
(docs/notifications.md, docs/webhooks.md). Pure: no database, no network but DNS."""
