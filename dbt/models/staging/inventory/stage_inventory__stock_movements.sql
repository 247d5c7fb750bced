with

source as (

    select * from {{ source('inventory', 'stock_movements') }}

),

renamed as (

    select
        movement_id,
        product_id,
        warehouse as warehouse_code,
        quantity,
        moved_at,
        filename as source_file
    from source

),

final as (

    -- append-only: every accepted file adds movements, so every row counts (a duplicate file would count twice,
    -- which is why dbt reads accepted files only)
    select * from renamed

)

select * from final
