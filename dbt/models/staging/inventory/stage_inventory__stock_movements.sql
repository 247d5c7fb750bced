{{ config(materialized='incremental', on_schema_change='fail') }}

with

source as (

    -- the rows of files loaded since this model's last build (every row on a full build)
    select * from {{ landing_new_rows(source('inventory', 'stock_movements')) }}

),

renamed as (

    select
        movement_id,
        product_id,
        warehouse as warehouse_code,
        quantity,
        moved_at,
        filename as source_file,
        _landing_batch as _landing_high
    from source

),

final as (

    -- append-only: every accepted file adds movements, so every row counts (a file is loaded once, and a duplicate
    -- file is never accepted)
    select * from renamed

)

select * from final
