# Pacing (issue 10 part 1): the API quotas Rotor paces its rotations against, the share of each
# it allows itself, and the switch. Every function gets them as environment variables
# (locals.tf function_environment), in the format the functions read (domain/pacing/quotas.ts
# parseQuotasFile; docs/fleet-scale.md "Quotas file"):
#   ROTOR_PACING_QUOTAS          {"quotas":{BUCKET:{"rate":R,"burst":B}}}, empty for AWS's defaults
#   ROTOR_PACING_SAFETY_FRACTION a number in (0, 1]
#   ROTOR_PACING_ENABLED         "true" or "false"

locals {
  # domain/pacing/quotas.ts Bucket, in its order (test/contract/terraform-fleet.test.ts holds
  # this list to it). lambda:ConcurrentExecutions is a concurrency, not a rate: its "rate" is
  # the number of concurrent executions.
  pacing_buckets = [
    "iot:CreateCertificateFromCsr",
    "iot:DescribeCertificate",
    "iot:UpdateCertificate",
    "iot:DeleteCertificate",
    "iot:ListPrincipalThings",
    "iot:ListAttachedPolicies",
    "iot:AttachPolicy",
    "iot:DetachPolicy",
    "iot:AttachThingPrincipal",
    "iot:DetachThingPrincipal",
    "iot:Connect",
    "iotdata:Publish",
    "states:StartExecution",
    "states:SendTask",
    "states:StateTransition",
    "lambda:ConcurrentExecutions",
  ]
  pacing_concurrency_bucket = "lambda:ConcurrentExecutions"
}

variable "api_quotas" {
  description = "The account's quotas where they differ from AWS's defaults, keyed by bucket (domain/pacing/quotas.ts, e.g. \"iot:DescribeCertificate\"): calls per second and, optionally, the burst. For \"lambda:ConcurrentExecutions\", rate is the concurrency. {} paces against AWS's defaults."
  type = map(object({
    rate  = number
    burst = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for bucket in keys(var.api_quotas) : contains(local.pacing_buckets, bucket)])
    error_message = "api_quotas has an unknown bucket. Known buckets: iot:CreateCertificateFromCsr, iot:DescribeCertificate, iot:UpdateCertificate, iot:DeleteCertificate, iot:ListPrincipalThings, iot:ListAttachedPolicies, iot:AttachPolicy, iot:DetachPolicy, iot:AttachThingPrincipal, iot:DetachThingPrincipal, iot:Connect, iotdata:Publish, states:StartExecution, states:SendTask, states:StateTransition, lambda:ConcurrentExecutions."
  }

  validation {
    condition     = alltrue([for quota in values(var.api_quotas) : quota.rate > 0 && (quota.burst == null ? true : quota.burst >= 1)])
    error_message = "Each api_quotas entry needs a rate above 0 (calls per second) and, if given, a burst of at least 1."
  }

  validation {
    condition     = !contains(keys(var.api_quotas), "lambda:ConcurrentExecutions") || try(var.api_quotas["lambda:ConcurrentExecutions"].burst == null && floor(var.api_quotas["lambda:ConcurrentExecutions"].rate) == var.api_quotas["lambda:ConcurrentExecutions"].rate, false)
    error_message = "api_quotas[\"lambda:ConcurrentExecutions\"] is a concurrency: give its whole number as rate, and no burst."
  }
}

variable "quota_safety_fraction" {
  description = "The share of each quota Rotor plans to use, so that other workloads of the account keep the rest."
  type        = number
  default     = 0.9

  validation {
    condition     = var.quota_safety_fraction > 0 && var.quota_safety_fraction <= 1
    error_message = "quota_safety_fraction must be above 0 and at most 1."
  }
}

variable "pacing_enabled" {
  description = "Pace rotations against the quotas. false starts every rotation of an audit at once (small fleets, or to measure)."
  type        = bool
  default     = true
}

locals {
  # The quotas file's format: only what the operator set; the functions fill in AWS's defaults.
  pacing_quotas_document = {
    for bucket, quota in var.api_quotas : bucket => (
      bucket == local.pacing_concurrency_bucket
      ? { concurrency = quota.rate }
      : merge({ rate = quota.rate }, quota.burst == null ? {} : { burst = quota.burst })
    )
  }

  pacing_environment = {
    ROTOR_PACING_QUOTAS          = length(var.api_quotas) == 0 ? "" : jsonencode({ quotas = local.pacing_quotas_document })
    ROTOR_PACING_SAFETY_FRACTION = tostring(var.quota_safety_fraction)
    ROTOR_PACING_ENABLED         = tostring(var.pacing_enabled)
  }
}
