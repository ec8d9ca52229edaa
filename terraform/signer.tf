# The signer of new device certificates (issue 11, part 1; domain/signer.ts): 'aws-iot'
# (CreateCertificateFromCsr, certificates valid until 2049) or 'private-ca' (AWS Private CA
# with a real validity, then RegisterCertificate / RegisterCertificateWithoutCA in IoT). The
# values reach issue-certificate as ROTOR_* through the wiring's settings (locals.tf settings).

variable "signer" {
  description = "Who signs new device certificates: \"aws-iot\" (CreateCertificateFromCsr; they expire in 2049, so only the age check rotates them again) or \"private-ca\" (AWS Private CA with private_ca_validity_days; the expiring check renews them each cycle)."
  type        = string
  default     = "aws-iot"

  validation {
    condition     = contains(["aws-iot", "private-ca"], var.signer)
    error_message = "signer must be \"aws-iot\" or \"private-ca\"."
  }
}

variable "private_ca_arn" {
  description = "With signer = \"private-ca\": the ARN of the AWS Private CA that signs device certificates. Issue certificate may use this CA and no other."
  type        = string
  default     = null

  validation {
    condition     = var.private_ca_arn == null || can(regex("^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[0-9a-f-]{36}$", var.private_ca_arn))
    error_message = "private_ca_arn must be a Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/UUID) or null."
  }

  validation {
    condition     = var.signer != "private-ca" || var.private_ca_arn != null
    error_message = "signer = \"private-ca\" needs private_ca_arn."
  }
}

variable "private_ca_validity_days" {
  description = "With signer = \"private-ca\": days a new certificate is valid. More than 30: DEVICE_CERTIFICATE_EXPIRING_CHECK flags certificates that expire within 30 days, so a shorter validity would be rotated again at once."
  type        = number
  default     = 365

  validation {
    condition     = var.private_ca_validity_days > 30 && floor(var.private_ca_validity_days) == var.private_ca_validity_days
    error_message = "private_ca_validity_days must be a whole number of days above 30 (the expiring check's window)."
  }
}

variable "private_ca_template_arn" {
  description = "With signer = \"private-ca\": the Private CA template of new certificates. Null means the end-entity template, EndEntityCertificate/V1."
  type        = string
  default     = null

  validation {
    condition     = var.private_ca_template_arn == null || can(regex("^arn:aws[a-z-]*:acm-pca:::template/[A-Za-z0-9_]+/V[0-9]+$", var.private_ca_template_arn))
    error_message = "private_ca_template_arn must be a Private CA template ARN (arn:aws:acm-pca:::template/NAME/VN) or null."
  }
}

variable "private_ca_signing_algorithm" {
  description = "With signer = \"private-ca\": the signing algorithm. Null means derived from the CA's key (SHA256WITHRSA for RSA, SHA256WITHECDSA for P-256, SHA384WITHECDSA for P-384)."
  type        = string
  default     = null

  validation {
    condition     = var.private_ca_signing_algorithm == null || contains(["SHA256WITHECDSA", "SHA384WITHECDSA", "SHA512WITHECDSA", "SHA256WITHRSA", "SHA384WITHRSA", "SHA512WITHRSA", "SM3WITHSM2"], coalesce(var.private_ca_signing_algorithm, "-"))
    error_message = "private_ca_signing_algorithm must be one of SHA256WITHECDSA, SHA384WITHECDSA, SHA512WITHECDSA, SHA256WITHRSA, SHA384WITHRSA, SHA512WITHRSA, SM3WITHSM2, or null."
  }
}

variable "iot_ca_registration_mode" {
  description = "With signer = \"private-ca\": how the Private CA's certificate is registered with IoT. DEFAULT: device certificates are registered with RegisterCertificate and the CA certificate; SNI_ONLY: with RegisterCertificateWithoutCA."
  type        = string
  default     = "DEFAULT"

  validation {
    condition     = contains(["DEFAULT", "SNI_ONLY"], var.iot_ca_registration_mode)
    error_message = "iot_ca_registration_mode must be \"DEFAULT\" or \"SNI_ONLY\"."
  }
}

variable "audit_ca_certificate_expiring_check" {
  description = "Whether the scheduled audit also runs CA_CERTIFICATE_EXPIRING_CHECK (CA certificates registered with IoT that expire within 30 days), when manage_audit_configuration is true. Its findings do not start device rotations."
  type        = bool
  default     = true
}

locals {
  private_ca_enabled = var.signer == "private-ca"

  # The wiring's signer settings (settings of locals.tf); "" = unset, as domain/signer.ts reads it.
  signer_settings = {
    signer                    = var.signer
    privateCaArn              = local.private_ca_enabled ? var.private_ca_arn : ""
    privateCaValidityDays     = var.private_ca_validity_days
    privateCaTemplateArn      = var.private_ca_template_arn == null ? "" : var.private_ca_template_arn
    privateCaSigningAlgorithm = var.private_ca_signing_algorithm == null ? "" : var.private_ca_signing_algorithm
    iotCaRegistrationMode     = var.iot_ca_registration_mode
  }

  # The wiring's 'privateCa' resource kind: the one CA, and nothing at all with aws-iot (the
  # statement is left out, see granted_permissions).
  signer_resource_kinds = {
    "privateCa" = {
      sid       = "PrivateCa"
      resources = local.private_ca_enabled ? [var.private_ca_arn] : []
    }
  }

  # What each function's role grants: the wiring's permissions, less the Private CA actions
  # when no Private CA signs (an IAM statement needs a resource, and none is needed).
  granted_permissions = {
    for name, spec in local.wiring.functions : name => {
      for action, kind in spec.permissions : action => kind if kind != "privateCa" || local.private_ca_enabled
    }
  }

  # CA_CERTIFICATE_EXPIRING_CHECK joins the scheduled audit (defender.tf) without joining
  # audit_checks: its findings name CAs, which start-rotations does not rotate.
  ca_audit_check_configurations = var.audit_ca_certificate_expiring_check ? { CaCertificateExpiringCheck = { Enabled = true } } : {}
  audit_target_check_names      = concat(var.audit_checks, var.audit_ca_certificate_expiring_check ? ["CA_CERTIFICATE_EXPIRING_CHECK"] : [])
}
