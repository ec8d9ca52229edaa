# The single rotation table (domain/records.ts): current record and history per thing,
# audit reports; the sparse by-status index lists devices by outcome without a Scan.
resource "aws_dynamodb_table" "rotations" {
  name         = local.table_name
  billing_mode = "PAY_PER_REQUEST" # rotations come in bursts after an audit, then nothing for a day
  hash_key     = local.wiring.table.partitionKey
  range_key    = local.wiring.table.sortKey

  attribute {
    name = local.wiring.table.partitionKey
    type = "S"
  }

  attribute {
    name = local.wiring.table.sortKey
    type = "S"
  }

  attribute {
    name = local.wiring.table.statusIndex.partitionKey
    type = "S"
  }

  attribute {
    name = local.wiring.table.statusIndex.sortKey
    type = "S"
  }

  global_secondary_index {
    name      = local.wiring.table.statusIndex.name
    hash_key  = local.wiring.table.statusIndex.partitionKey
    range_key = local.wiring.table.statusIndex.sortKey
    # Only what the operator CLI reads (wiring table.statusIndex.nonKeyAttributes): a task token
    # in the index could be read by anyone allowed to list devices, and completes a waiting step.
    projection_type    = "INCLUDE"
    non_key_attributes = local.wiring.table.statusIndex.nonKeyAttributes
  }

  ttl {
    attribute_name = local.wiring.table.ttlAttribute
    enabled        = true
  }

  # The table is the record of which certificate each device was moved to: keep 35 days of
  # point-in-time recovery and encrypt with KMS (the AWS managed key aws/dynamodb).
  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.table_deletion_protection

  tags = local.tags
}
