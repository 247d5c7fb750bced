with

source as (

    -- append-only: every row of every accepted file (the rows of files new since the last build, incrementally)
    select * from {{ landing_rows('inventory', 'stock_movements') }}

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

    select * from renamed

)

select * from final
