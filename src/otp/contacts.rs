//! Step-up contacts: the phone (and preferred provider) an app stored for its user, which a send
//! by `user_id` alone uses. Each app has its own users: contacts are keyed by (app, user id).

use crate::service::{Gateway, GatewayError, Tenant};
use crate::store::Contact;

impl Gateway {
    /// The user's contact; an unknown user reads as one with nothing stored, so the answer never
    /// says who is known.
    pub async fn contact(&self, tenant: &Tenant, user_id: &str) -> Result<Contact, GatewayError> {
        Ok(self.store.get_contact(&tenant.client, user_id).await?.unwrap_or(Contact {
            client: tenant.client.clone(),
            user_id: user_id.to_string(),
            phone: None,
            otp_enabled: false,
            preferred_provider: None,
        }))
    }

    /// Stores the calling app's user's contact. A preferred provider must be configured: a
    /// misspelt name would otherwise be stored and silently never preferred.
    pub async fn put_contact(&self, tenant: &Tenant, mut contact: Contact) -> Result<Contact, GatewayError> {
        contact.client = tenant.client.clone();
        if let Some(name) = &contact.preferred_provider {
            if !self.settings.providers.iter().any(|p| p.name() == name) {
                return Err(GatewayError::UnknownProvider {
                    field: "preferred_provider",
                    name: name.clone(),
                });
            }
        }
        if contact.otp_enabled && contact.phone.is_none() {
            return Err(GatewayError::Invalid("`otp_enabled` needs a `phone`".into()));
        }
        self.store.put_contact(&contact).await?;
        Ok(contact)
    }
}
