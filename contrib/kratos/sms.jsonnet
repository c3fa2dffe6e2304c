// Ory Kratos courier HTTP channel → smsgate (POST /v1/hooks/kratos/sms).
// Kratos renders the whole SMS (its template holds the code); smsgate delivers it as written.
function(ctx) {
  to: ctx.recipient,
  body: ctx.body,
  template_type: ctx.template_type,
}
